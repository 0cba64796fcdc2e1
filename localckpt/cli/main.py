"""The parser and the error handler of the ``localckpt`` command.

The store comes from ``--store``, else ``$LOCALCKPT_URL``, else ``./.localckpt``;
``--objects`` and ``--storage-options`` describe that same store. ``--store NAME`` with
the name of a remote (``localckpt remote add``) and no directory of that name opens that
remote with its own settings, so ``localckpt --store team tree T`` looks at what a push
sent. Only commands that
create (init, demo, ingest, import, pull) may create a missing store; every other one
fails with exit status 1 and creates nothing. A command line wrong by its form is
bad usage, exit 2, as argparse's own errors are: a command's ``check(args)`` default (or
the command itself) raises common.UsageError, shown under the command's usage, before
any store is opened. A creating command may set a ``prepare(args,
exit_stack)`` default that runs before the store is opened (pull opens its source there,
import checks its file), so that its failure creates nothing either; what shows only
later (ingest's video cut short) removes a store directory the command created
(``newstore``).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from typing import Any, NoReturn, TextIO, cast

from .. import __version__
from ..errors import LocalckptError
from .common import (
    EXIT_ERROR,
    UsageError,
    bare_name,
    nonempty,
    options_arg,
    remote_in_errors,
    verify_here,
)

__all__ = ["build_parser", "main"]

#: Command groups, each a module of this package with register(subparsers).
GROUPS = ("inspect", "merge", "transfer", "remote", "maintenance", "ingest", "web", "runs",
          "decide")
#: command -> its group: a command given on the line gets only its group's parsers built
#: (building all ~40 costs each start ~80 ms); a test holds this equal to what the groups
#: register
COMMANDS = {
    **dict.fromkeys(("log", "ls", "show", "tree"), "inspect"),
    **dict.fromkeys(("diff", "merge"), "merge"),
    **dict.fromkeys(("export", "import", "pull", "push"), "transfer"),
    "remote": "remote",
    **dict.fromkeys(("gc", "init", "prune", "retain", "rm", "tag", "tags", "untag", "verify"),
                    "maintenance"),
    **dict.fromkeys(("demo", "ingest", "similar"), "ingest"),
    "serve": "web",
    **dict.fromkeys(("memo", "run", "runs"), "runs"),
    **dict.fromkeys(("compare", "labels", "sql"), "decide"),
}
#: the options before the command that take a value
_VALUED = ("--store", "--objects", "--storage-options")


def _command_in(argv: Sequence[str]) -> str | None:
    """The command named on a command line (the first word that is neither an option
    nor an option's value), or None."""
    words = iter(argv)
    for word in words:
        if word == "--":
            return next(words, None)
        if word.startswith("--") and "=" not in word and any(o.startswith(word)
                                                              for o in _VALUED):
            next(words, None)  # its value (argparse takes a unique prefix of an option)
        elif not word.startswith("-"):
            return word
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; with command (a known one), only that command's group of commands
    (anything else, --help included, gets every group)."""
    import importlib

    parser = _Parser(
        prog="localckpt",
        description="Local-first store for video-pipeline state: timelines and checkpoint trees.",
        epilog="Exit status: 0 success, 1 an error (message on stderr), 2 bad usage.",
    )
    parser.add_argument(
        "--store", metavar="URL", type=nonempty("a store URL, directory or remote name"),
        help="store URL, directory or remote name (default: $LOCALCKPT_URL, else the "
             "config file's [store] url, else ./.localckpt)",
    )
    parser.add_argument("--objects", metavar="URL", type=nonempty("an objects URL"),
                        help="objects URL of this store (e.g. s3://bucket/prefix)")
    parser.add_argument("--storage-options", metavar="JSON",
                        type=options_arg("--storage-options"),
                        help="fsspec options of this store's objects, as a JSON object")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    groups = (COMMANDS[command],) if command in COMMANDS else GROUPS
    for group in groups:
        importlib.import_module(f"{__package__}.{group}").register(sub)
    if command not in COMMANDS:
        helps = sub.add_parser("help", help="show a command's help, as its --help does",
                               description="show a command's help (`localckpt help run "
                                           "show` is `localckpt run show --help`)")
        helps.add_argument("topic", nargs="*", metavar="COMMAND",
                           help="a command, and its subcommand (none: every command)")
        helps.set_defaults(func=_help, needs_store=False, _parser=helps)
    return parser


def _help(_store: None, args: argparse.Namespace) -> int:
    """`localckpt help COMMAND...`: that command's --help, as git, pip and docker have it
    (an unknown command is the same usage error it is without help)."""
    words = [*args.topic, "--help"]
    build_parser(_command_in(words)).parse_args(words)  # prints the help and exits 0
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose "invalid choice" names the nearest choice, as git does for
    a mistyped command (`localckpt tre`: "maybe you meant 'tree'?", as Python 3.14's
    argparse says it). Its subparsers are of this class too (add_subparsers' default)."""

    def error(self, message: str) -> NoReturn:
        import re

        m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)$", message)
        if m:  # (with suggest_on_error, Python 3.14's own, the message has another shape)
            import difflib

            word = m.group(1)  # choices are quoted by some Pythons, bare in others
            choices = (re.findall(r"'([^']*)'", m.group(2))
                       or [c.strip() for c in m.group(2).split(",")])
            near = ([c for c in choices if c.lower() == word.lower()]  # --metric AP
                    or difflib.get_close_matches(word, choices, n=1, cutoff=0.7))
            if near:
                message = (f"{message[:m.end(1) + 1]}, maybe you meant {near[0]!r}?"
                           f"{message[m.end(1) + 1:]}")
        elif message.endswith(("required: ACTION", "required: COMMAND")):
            message += self._choices()
        super().error(message)

    def _choices(self) -> str:
        """What `localckpt run` (no action) may be followed by: its usage says only
        "ACTION ...", so the user was left to guess or to ask --help."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                names = list(action.choices)
                if 2 <= len(names) <= 5:
                    return f" ({', '.join(names[:-1])} or {names[-1]})"
        return f" (`{self.prog} --help` lists them)"


class Terminated(KeyboardInterrupt):
    """SIGTERM (kill, docker stop, a CI timeout) while a command runs: unwound as Ctrl-C
    is, so an ingest deletes what it wrote and releases its lease, instead of
    leaving temporary shards and a lease that gc may only remove after the lease's TTL."""


def _terminate(signum: int, frame: Any) -> None:
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut the cleanup
    raise Terminated


@contextlib.contextmanager
def _sigterm_unwinds() -> Any:
    """SIGTERM raises Terminated in the main thread while the command runs (only where
    nobody set a handler of their own: an embedding program keeps its)."""
    import signal
    import threading

    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL):
        yield
        return
    signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def main(argv: Sequence[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a non-UTF-8 path from argv prints escaped,
        if hasattr(stream, "reconfigure"):   # never as a UnicodeEncodeError
            stream.reconfigure(errors="backslashreplace")
    words = sys.argv[1:] if argv is None else list(argv)
    stdout, stderr = sys.stdout, sys.stderr
    nowhere = _nowhere() if stdout is None or stderr is None else None
    out = _ReaderGone(cast(TextIO, stdout or nowhere))
    sys.stdout, sys.stderr = (cast(TextIO, out),
                              cast(TextIO, _ReaderGone(cast(TextIO, stderr or nowhere))))
    try:
        try:
            args = _parse(build_parser(_command_in(words)), words)  # --help prints, exits
            with _sigterm_unwinds():
                status = _run(args)
        except Terminated:
            status = 128 + 15  # as a shell reports a process SIGTERM ended
        except KeyboardInterrupt:
            status = 130
        finally:
            sys.stdout.flush()  # here, not at exit: a reader gone by then is told apart too
            sys.stderr.flush()
            sys.stdout, sys.stderr = stdout, stderr
            if nowhere is not None:
                nowhere.close()
    except SystemExit:  # --help, bad usage: argparse's exit, unless the output failed
        if out.failed is None:
            raise
        status = EXIT_ERROR
    return _output_failed(out.failed) if out.failed is not None else status


def _output_failed(exc: OSError) -> int:
    """Standard output that could not be written (a full disk, a file size limit): the
    command went on with it dropped, as for a reader gone, but what was printed is
    incomplete, so it is an error, not the command's own status (`sql --csv > out.csv`
    exited 0 with half a file, or with a traceback)."""
    try:
        print(f"localckpt: error: could not write the output ({exc.strerror or exc}); "
              "what was printed is incomplete", file=sys.stderr)
    except (OSError, ValueError, AttributeError):
        pass
    return EXIT_ERROR


def _nowhere() -> TextIO:
    """Where output goes when the command started with stdout or stderr closed
    (`localckpt ls >&-`, a daemon's job): Python leaves sys.stdout None, and the first
    print raised AttributeError (a traceback, exit 120). The output is dropped, as for a
    reader gone, and the command's status is its own. Opened first, /dev/null takes the
    closed descriptor, so no file the command opens later (a catalog) is descriptor 1."""
    import os

    return cast(TextIO, open(os.devnull, "w", encoding="utf-8"))


class _ReaderGone:
    """sys.stdout (and sys.stderr) while a command runs. Once the reader of its pipe is
    gone (`localckpt verify | head -1`), the rest of the output goes to /dev/null and the
    command runs to its end, so that its exit status is its own: the BrokenPipeError
    ended the command and was taken for success (`verify` of a damaged store, cut by
    `head`, exited 0), or, raised by the flush at exit, printed "Exception ignored ...
    BrokenPipeError" and exited 120."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        #: the error of a write that failed otherwise (ENOSPC, EFBIG, EIO): the output
        #: is dropped from then on too, and main says so and exits 1
        self.failed: OSError | None = None

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._gone()
            return len(text)
        except OSError as exc:
            self._failed(exc)
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._gone()
        except OSError as exc:
            self._failed(exc)

    def _failed(self, exc: OSError) -> None:
        if self.failed is None:
            self.failed = exc
        self._gone()
        try:  # what the stream still holds goes to /dev/null now, not raised again
            self._stream.flush()
        except OSError:
            pass

    def _gone(self) -> None:
        """/dev/null in place of the pipe, under the same descriptor: what the stream
        still holds, and writes to come, go there (at exit too: no "Exception ignored")."""
        import os

        try:
            fd = self._stream.fileno()
        except (OSError, ValueError, AttributeError):  # no descriptor: nothing to redirect
            return
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, fd)
        finally:
            os.close(null)

    def __getattr__(self, name: str) -> Any:  # isatty, encoding, buffer, ...
        return getattr(self._stream, name)


def _parse(parser: argparse.ArgumentParser, words: list[str]) -> argparse.Namespace:
    """parse_args, but an unrecognized argument after the command is shown with that
    command's usage (``localckpt diff: error: unrecognized arguments: X`` under
    ``usage: localckpt diff ...``), not with the top-level usage, which lists no
    argument of the command."""
    args, extra = parser.parse_known_args(words)
    if extra:
        command = getattr(args, "_parser", None)
        before = words[:words.index(args.command)] if args.command in words else words
        if command is None or any(word in before for word in extra):
            command = parser  # an unknown option before the command is the top level's
        misplaced = [w.split("=", 1)[0] for w in extra if w.split("=", 1)[0] in _VALUED]
        hint = (f" ({misplaced[0]} goes before the command: localckpt {misplaced[0]} ... "
                f"{args.command} ...)" if misplaced else "")
        if not hint and command is parser and "--json" in extra and args.command:
            # `localckpt --json ls`: every command takes --json, after its name
            hint = f" (--json goes after the command: localckpt {args.command} ... --json)"
        if not hint and args.command == "tag" and {"-d", "--delete"} & set(extra):
            hint = " (`localckpt untag NAME` removes a tag, as `git tag -d NAME` does)"
        if not hint:  # `ls --jsno`: the nearest option named, as a mistyped command is
            hint = _nearest_option(command, extra)
        command.error(f"unrecognized arguments: {' '.join(extra)}{hint}")
    return args


def _nearest_option(parser: argparse.ArgumentParser, extra: list[str]) -> str:
    """" (maybe you meant '--json'?)" for the first unknown long option near one of
    parser's (`localckpt ls --jsno`), else ""."""
    import difflib

    options = [o for o in parser._option_string_actions if o.startswith("--")]
    for word in extra:
        if word.startswith("--") and word != "--":
            near = difflib.get_close_matches(word.split("=", 1)[0], options, n=1,
                                             cutoff=0.7)
            if near:
                return f" (maybe you meant {near[0]!r}?)"
    return ""


def _terminal_safe(message: str) -> str:
    """An error message for stderr, line by line as render.printable writes stored text:
    a name it quotes may come from a file, a store or a peer, and an escape sequence in
    it must print as itself, not recolour or rewrite the user's terminal."""
    from ..render import printable

    return "\n".join(map(printable, message.split("\n")))


def _run(args: argparse.Namespace) -> int:
    try:
        # the command line's form, checked before anything is opened or created
        if (check := getattr(args, "check", None)) is not None:
            check(args)
        if not args.needs_store:
            return int(args.func(None, args))
        from ..registry import open as open_store

        with contextlib.ExitStack() as stack:
            # what a creating command checks first, so that a failure creates nothing
            if (prepare := getattr(args, "prepare", None)) is not None:
                prepare(args, stack)
            store = stack.enter_context(_open_store(args, open_store))
            if getattr(args, "store_is_remote", False):  # errors name it as typed
                stack.enter_context(remote_in_errors(store, args.store))
            stack.enter_context(verify_here(store))  # inside: then said as typed
            return int(args.func(store, args))
    except UsageError as exc:  # as argparse's own: the command's usage, then exit 2
        command: argparse.ArgumentParser = args._parser
        command.error(_terminal_safe(exc.for_cli()))
    except LocalckptError as exc:
        print(f"localckpt: error: {_terminal_safe(exc.for_cli())}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError as exc:  # not from stdout or stderr (_ReaderGone): a failure
        print(f"localckpt: error: {exc}", file=sys.stderr)
        return EXIT_ERROR


def _open_store(args: argparse.Namespace, open_store: Any) -> Any:
    """The store the global flags name: a remote's name (when no such directory exists)
    opens that remote with its own settings, else ``--store`` is a URL or directory."""
    options = args.storage_options  # a dict (options_arg)
    ref = args.store
    if bare_name(ref):
        from ..config import remote

        named = remote(ref)
        if named is not None:
            args.store_is_remote = True
            if args.objects or options:  # the flags win over the remote's entry
                named = named._replace(objects=args.objects or named.objects,
                                       storage_options={**named.storage_options,
                                                        **(options or {})})
            return named.open(create=args.creates)
        if not args.creates:
            return _or_a_remote(ref, lambda: open_store(
                ref, objects=args.objects, storage_options=options, create=False))
    if ref is None and not args.creates:
        return _named_by_default(lambda: open_store(
            None, objects=args.objects, storage_options=options, create=False))
    if ref and "/" not in ref and ":" not in ref and not args.creates:
        return _shadowing_a_remote(ref, lambda: open_store(
            ref, objects=args.objects, storage_options=options, create=False))
    return open_store(ref, objects=args.objects, storage_options=options,
                      create=args.creates)


def _shadowing_a_remote(name: str, opening: Any) -> Any:
    """A bare --store name that is a file or directory here, but no store, while a remote
    of that name is configured: the error says the directory was opened, not the remote
    (`--store team ls` in a directory that has a ./team said only "no localckpt store at
    .../team", as if the remote were gone)."""
    from ..errors import NotFoundError

    try:
        return opening()
    except NotFoundError as exc:
        from ..config import remote

        named = remote(name)
        if named is None:
            raise
        import shlex

        from ..registry import redact

        raise NotFoundError(str(exc), cli=(
            f"{exc.for_cli()} (./{name} is here, so --store {name} opened it, not the remote "
            f"{name!r}; name the remote by its URL: --store {shlex.quote(redact(named.url))})"
        )) from None


def _named_by_default(opening: Any) -> Any:
    """A missing store that no --store named: the error says where its URL came from
    ($LOCALCKPT_URL, the config file's [store] url, or the default), not "check the
    --store path" of a flag nobody gave."""
    from ..errors import NotFoundError

    try:
        return opening()
    except NotFoundError as exc:
        from ..config import config_path
        from ..registry import default_url

        what = exc.for_cli().split(";", 1)[0]
        origin = default_url()[1]
        if origin == "the default":
            hint = (f"the default store, as neither --store, $LOCALCKPT_URL nor [store] url "
                    f"in {config_path()} names one; create it here with `localckpt init`, "
                    "or name a store with --store")
        else:
            fix = origin if origin.startswith("$") else "that url"
            hint = (f"the store {origin} names; create it with `localckpt init`, or correct "
                    f"{fix}, or name another store with --store")
        raise NotFoundError(str(exc), cli=f"{what} ({hint})") from None


def _or_a_remote(name: str, opening: Any) -> Any:
    """A bare --store name that is neither a directory nor a remote: the error names the
    remotes there are, as push and pull do (a remote's name mistyped, most likely)."""
    from ..errors import NotFoundError

    try:
        return opening()
    except NotFoundError as exc:
        import difflib

        from ..config import remotes

        names = [r.name for r in remotes()]
        if not names:
            raise
        near = difflib.get_close_matches(name, names, n=1)
        hint = f"did you mean remote {near[0]!r}? " if near else ""
        raise NotFoundError(
            str(exc), cli=f"{exc.for_cli()} ({hint}remotes: {', '.join(names)}; `--store "
                          "NAME` opens a remote by its name)") from None


if __name__ == "__main__":
    sys.exit(main())
