"""The ``localckpt`` command line.

``main`` holds the parser and the error handler; ``common`` the pieces every command
shares (references, JSON output, progress, exit codes); each other module is one group
of commands with a ``register(subparsers)`` function:

    inspect      ls, tree, log, show
    merge        diff, merge
    transfer     push, pull, export, import
    remote       remote add, remote list, remote remove
    maintenance  init, verify, tag, untag, tags, prune, retain, rm, gc
    ingest       ingest, similar, demo
    web          serve
    runs         runs, run show|abort, memo stats|clear
    decide       labels import|export, compare, sql
"""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
