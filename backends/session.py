"""The servers of ``python -m backends up``: their environment, state file and shutdown.

``up --detach`` runs the servers in a background process that writes a state file (its
pid, the PostgreSQL cluster directory, moto's pid, the environment) once both answer;
``down`` reads it, stops that process (which stops both servers and deletes their
data) and, if the process died without cleaning up, stops what it left itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from . import PG_DSN_ENV, S3_OPTIONS_ENV, S3_URL_ENV

__all__ = ["default_state_file", "environment", "exports", "pid_alive", "read_state", "stop",
           "write_state"]


def default_state_file() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"localckpt-backends-{os.getuid()}.json"


def environment(dsn: str, bucket_url: str, storage_options: dict[str, Any]
                ) -> dict[str, dict[str, str]]:
    """The variables to use the servers, in two groups: what ``localckpt`` reads (the
    store named by --store's defaults), and what localckpt's own test suite reads."""
    options = json.dumps(storage_options, sort_keys=True)
    return {
        "localckpt": {"LOCALCKPT_URL": dsn, "LOCALCKPT_OBJECTS": bucket_url,
                      "LOCALCKPT_STORAGE_OPTIONS": options},
        "tests": {PG_DSN_ENV: dsn, S3_URL_ENV: bucket_url, S3_OPTIONS_ENV: options},
    }


_LABELS = {
    "localckpt": "# read by localckpt (`localckpt ls`, localckpt.open()): a PostgreSQL + S3 store",
    "tests": "# read by localckpt's own test suite (tests/conftest.py) instead of starting "
             "its own servers",
}


def exports(env: dict[str, dict[str, str]]) -> str:
    """``export`` lines, each group under its label, for a shell to ``source``."""
    blocks = []
    for group, variables in env.items():
        lines = [_LABELS.get(group, f"# {group}")]
        lines += [f"export {k}={shlex.quote(v)}" for k, v in variables.items()]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (it holds the servers' credentials)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def write_state(path: Path, state: dict[str, Any]) -> None:
    write_private(path, json.dumps(state, indent=2) + "\n")


def read_state(path: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise RuntimeError(f"{path} is not a backends state file ({exc}); remove it") from exc


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours still answers kill(0): reap it if it is ours
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def stop(path: Path, timeout: float = 30.0) -> str:
    """Stop what the state file describes; return what was done. The state file (and the
    env file written with it) is removed."""
    state = read_state(path)
    if state is None:
        return f"nothing to stop: no state file {path}"
    pid = int(state["pid"])
    done = "stopped" if pid_alive(pid) else "was not running"
    if pid_alive(pid):
        os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pid, timeout):
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 5.0)
            done = "killed"
    leftovers = _clean_leftovers(state)
    for name in ("env_file",):
        if state.get(name):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(state[name])
    for leftover in (path, path.with_suffix(".log")):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
    return f"{done} (pid {pid}){leftovers}; PostgreSQL and S3 data deleted"


def _clean_leftovers(state: dict[str, Any]) -> str:
    """Stop a server the background process left running (it was killed) and delete
    the cluster directory."""
    notes = []
    moto = state.get("moto_pid")
    if moto and pid_alive(int(moto)):
        os.kill(int(moto), signal.SIGKILL)
        _wait_gone(int(moto), 5.0)
        notes.append("moto")
    directory = state.get("pg_directory")
    if directory and Path(directory).exists():
        data = Path(directory) / "data"
        if (data / "postmaster.pid").exists() and state.get("pg_bindir"):
            argv = [str(Path(state["pg_bindir"]) / "pg_ctl"), "-D", str(data), "stop",
                    "-m", "immediate", "-w", "-t", "30"]
            if os.geteuid() == 0:
                argv = ["runuser", "-u", "postgres", "--", *argv]
            subprocess.run(argv, capture_output=True, timeout=60, check=False)
            notes.append("PostgreSQL")
        shutil.rmtree(directory, ignore_errors=True)
    return f", then stopped what it left: {', '.join(notes)}" if notes else ""
