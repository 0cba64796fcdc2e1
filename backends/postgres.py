"""A throwaway PostgreSQL cluster on a free loopback port, for tests and benchmarks.

initdb and postgres refuse to run as root, so as root the cluster directory is given to
the ``postgres`` user and every command runs through ``runuser -u postgres --``.
Nothing listens beyond 127.0.0.1 and the socket lives in the cluster's own directory,
so several clusters (one per test worker) never collide.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from ._util import free_port, wait_until_free

__all__ = ["PostgresNotInstalledError", "ThrowawayPostgres", "find_bindir"]

_DEBIAN_BINDIR = Path("/usr/lib/postgresql/15/bin")


class PostgresNotInstalledError(RuntimeError):
    """initdb / pg_ctl could not be found."""


def find_bindir() -> Path:
    """Where initdb and pg_ctl live: $LOCALCKPT_PG_BINDIR, Debian's 15, pg_config, or PATH."""
    candidates: list[Path] = []
    if env := os.environ.get("LOCALCKPT_PG_BINDIR"):
        candidates.append(Path(env))
    candidates.append(_DEBIAN_BINDIR)
    if pg_config := shutil.which("pg_config"):
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
            candidates.append(Path(out))
        except (OSError, subprocess.SubprocessError):
            pass
    candidates.extend(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True))
    if initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).parent)
    for path in candidates:
        if (path / "initdb").is_file() and (path / "pg_ctl").is_file():
            return path
    raise PostgresNotInstalledError(
        "PostgreSQL server binaries (initdb, pg_ctl) were not found. Install them with "
        "`apt-get install postgresql` (or set LOCALCKPT_PG_BINDIR to their directory), or "
        "point the tests at a running server with LOCALCKPT_TEST_PG_DSN."
    )


class ThrowawayPostgres:
    """A private PostgreSQL cluster in a temporary directory, removed on stop().

    Use as a context manager, or call start() / stop(). kill() stops the server at once
    (like a crash) but keeps its data and port, so start() brings the same database back:
    that is what fault-injection tests need.

    Args:
        port: fixed port; default a free one.
        durable: False (the default, for tests) turns off fsync: committed data survives
            kill() but not a machine crash. True keeps PostgreSQL's normal durability
            (for honest benchmarks).
        max_connections: server limit; many-writer tests open a few dozen.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        durable: bool = False,
        max_connections: int = 100,
        bindir: str | os.PathLike[str] | None = None,
    ) -> None:
        self._fixed_port = port is not None
        self.port: int = port or 0
        self.durable = durable
        self.max_connections = max_connections
        self._bindir = Path(bindir) if bindir else None
        self._dir: Path | None = None
        self._running = False

    # -- public ---------------------------------------------------------------------------

    @property
    def dsn(self) -> str:
        """libpq URL of the ``postgres`` database as the ``postgres`` superuser (trust auth)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def running(self) -> bool:
        return self._running

    @property
    def bindir(self) -> Path | None:
        """Where initdb and pg_ctl were found (None before start())."""
        return self._bindir

    @property
    def directory(self) -> Path | None:
        """The cluster directory (data/, log), None before start() or after stop()."""
        return self._dir

    def start(self) -> ThrowawayPostgres:
        """Create the cluster on first call, then start the server and wait until it is ready."""
        if self._running:
            return self
        if self._dir is None:
            self._init_cluster()
        attempts = 1 if self._fixed_port else 3
        for attempt in range(attempts):
            if not self.port:
                self.port = free_port()
            try:
                self._pg_ctl(
                    "start", "-w", "-t", "60", "-l", str(self._log), "-o", f"-p {self.port}"
                )
                break
            except RuntimeError:
                if attempt == attempts - 1 or "could not bind" not in self.log_tail():
                    raise
                self.port = 0  # someone took the port between free_port() and bind: pick another
        self._running = True
        return self

    def kill(self) -> None:
        """Stop the server immediately (no shutdown checkpoint), keeping data and port."""
        if self._running:
            self._pg_ctl("stop", "-m", "immediate", "-w", "-t", "60")
            self._running = False
            wait_until_free(self.port)

    def restart(self) -> None:
        """kill() then start() on the same port; open connections break, data survives."""
        self.kill()
        self.start()

    def stop(self) -> None:
        """Stop the server and delete the cluster directory. Safe to call twice."""
        try:
            if self._running:
                self.kill()
        finally:
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)
                self._dir = None
            if not self._fixed_port:
                self.port = 0

    def log_tail(self, lines: int = 20) -> str:
        """The end of the server log, for error messages."""
        try:
            return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])
        except (OSError, AttributeError, TypeError):
            return ""

    def __enter__(self) -> ThrowawayPostgres:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self._running else "stopped"
        return f"<ThrowawayPostgres {self.dsn if self.port else '(no port)'} {state}>"

    # -- internals ------------------------------------------------------------------------

    @property
    def _data(self) -> Path:
        assert self._dir is not None
        return self._dir / "data"

    @property
    def _log(self) -> Path:
        assert self._dir is not None
        return self._dir / "log"

    def _init_cluster(self) -> None:
        bindir = self._bindir or find_bindir()
        self._bindir = bindir
        as_root = os.geteuid() == 0
        # As root the directory must be reachable by the postgres user: /tmp always is.
        self._dir = Path(tempfile.mkdtemp(prefix="lckpt-pg-", dir="/tmp" if as_root else None))
        if as_root:
            shutil.chown(self._dir, user="postgres", group="postgres")
        try:
            self._run(
                bindir / "initdb", "-D", str(self._data), "-U", "postgres", "-A", "trust",
                "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions",
            )
            settings = {
                "listen_addresses": "'127.0.0.1'",
                "unix_socket_directories": f"'{self._dir}'",
                "max_connections": str(self.max_connections),
            }
            if not self.durable:
                # Unsafe only if the machine crashes. synchronous_commit stays on so that a
                # commit survives kill() (a crash of PostgreSQL alone), as fault tests expect.
                settings |= {"fsync": "off", "full_page_writes": "off"}
            conf = "".join(f"{k} = {v}\n" for k, v in settings.items())
            with open(self._data / "postgresql.conf", "a") as fh:
                fh.write("\n# ThrowawayPostgres\n" + conf)
        except BaseException:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
            raise

    def _pg_ctl(self, *args: str) -> None:
        assert self._bindir is not None
        self._run(self._bindir / "pg_ctl", "-D", str(self._data), *args)

    def _run(self, *cmd: str | Path) -> None:
        argv = [str(c) for c in cmd]
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                raise PostgresNotInstalledError("running as root needs `runuser` (util-linux)")
            argv = ["runuser", "-u", "postgres", "--", *argv]
        proc = subprocess.run(
            argv, cwd=self._dir, capture_output=True, text=True, timeout=120, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"{Path(cmd[0]).name} failed "
                f"(exit {proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}\n"
                f"server log:\n{self.log_tail()}"
            )
