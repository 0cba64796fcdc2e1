#!/bin/bash
# usage: BASE=dir HEAD=dir alternate.sh ROUNDS SCRIPT ARGS...
# Runs SCRIPT in checkouts BASE and HEAD by turns (here 5382b7f and the stop-36 head),
# each with its own localckpt (PYTHONPATH), and prints "base|head JSON" lines.
export TMPDIR=${TMPDIR:-/tmp}/alternate
mkdir -p "$TMPDIR"
R=$1; shift
for i in $(seq "$R"); do
  for w in base head; do
    if [ $w = base ]; then P=$BASE; else P=$HEAD; fi
    echo "$w $(cd "$P" && PYTHONPATH=$P ${PYTHON:-python3} "$@" 2>/dev/null)"
  done
done
