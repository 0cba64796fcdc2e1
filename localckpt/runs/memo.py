"""Per-frame memo keys: what a stage's value for one frame depends on, said plainly.

A key has five parts (as Hamilton builds a node's cache key from its name, code version
and inputs' data versions)::

    stage     the stage's name                     "detect"
    version   its code version (the caller's str)  "yolo-v8.2" or code_version(fn)
    params    SHA-256 of its canonical params       hash of {"threshold": 0.5}
    frame     the frame's content hash              from the timeline's frame index
    inputs    input stage -> hash of that stage's   {"detect": "9f2c..."} (None: that
              value for this frame                  stage has no value for the frame)

and is the SHA-256 of their canonical JSON, so equal parts give equal keys in every
store and process, and a key can be shown part by part (:meth:`MemoKey.parts`). The
frame's content hash is the SHA-256 of its encoded bytes: a re-ingested copy of the
same video (same codec and quality) has the same hashes, and hits.

The memo is for per-frame stages: a temporal stage (tracking) reads other frames than
its own, which the key does not name; such stages pass ``memo=False``.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import textwrap
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from ..canonical import canonical_bytes, content_hash
from ..errors import InvalidInputError

__all__ = ["FrameKeys", "MemoKey", "code_version", "params_hash"]


def params_hash(params: Mapping[str, Any]) -> str:
    """SHA-256 of a stage's canonical params (the key's ``params`` part)."""
    return content_hash(canonical_bytes(dict(params), "params"))


@attrs.frozen
class MemoKey:
    """The memo key of one frame of one run (see the module docstring)."""

    stage: str
    version: str
    params: str
    frame: str
    inputs: tuple[tuple[str, str | None], ...] = ()

    def parts(self) -> dict[str, Any]:
        """The key's parts as a JSON object (what the digest is taken of)."""
        return {"stage": self.stage, "version": self.version, "params": self.params,
                "frame": self.frame, "inputs": dict(self.inputs)}

    @property
    def digest(self) -> str:
        """SHA-256 of the parts' canonical JSON: the key the memo stores."""
        return content_hash(canonical_bytes(self.parts(), "memo key"))

    def __str__(self) -> str:
        inputs = ", ".join(f"{k}={(v or 'none')[:12]}" for k, v in self.inputs) or "none"
        return (f"stage={self.stage} version={self.version!r} params={self.params[:12]} "
                f"frame={self.frame[:12]} inputs: {inputs} -> {self.digest[:12]}")


class FrameKeys:
    """Memo keys of a run's frames, computed from the frame index and the parent's input
    outputs once, then per frame by string assembly (the canonical JSON of the parts
    without building and encoding a dict per frame; a test holds it equal to
    :attr:`MemoKey.digest`).

    frames: sequence -> the frame's content hash. inputs: input stage -> its per-frame
    values (sequence -> value), from the parent checkpoint's frame-keyed output.
    """

    def __init__(self, stage: str, version: str, params: Mapping[str, Any],
                 frames: Mapping[int, str], inputs: Mapping[str, Mapping[int, Any]]) -> None:
        self.stage = stage
        self.version = version
        self.params = params_hash(params)
        self.frames = dict(frames)
        self._inputs = {name: inputs[name] for name in sorted(inputs)}
        self._input_hashes: dict[str, dict[int, str | None]] = {n: {} for n in self._inputs}
        enc = lambda text: canonical_bytes(text).decode("utf-8")  # noqa: E731
        self._names = [enc(name) for name in self._inputs]
        self._tail = f',"params":"{self.params}","stage":{enc(stage)},"version":{enc(version)}}}'
        #: after the frame's hash, for a stage without inputs (the usual one)
        self._bare = ('","inputs":{}' + self._tail).encode("utf-8")

    def input_hash(self, name: str, sequence: int) -> str | None:
        cache = self._input_hashes[name]
        if sequence not in cache:
            values = self._inputs[name]
            cache[sequence] = (content_hash(canonical_bytes(values[sequence], name))
                               if sequence in values else None)
        return cache[sequence]

    def key(self, sequence: int) -> MemoKey:
        """The key of one frame, part by part (for showing it)."""
        return MemoKey(self.stage, self.version, self.params, self.frames[sequence],
                       tuple((n, self.input_hash(n, sequence)) for n in self._inputs))

    def digest(self, sequence: int) -> str:
        """MemoKey.digest of one frame, fast."""
        if not self._names:
            return hashlib.sha256(b'{"frame":"%s%s' % (self.frames[sequence].encode(),
                                                       self._bare)).hexdigest()
        pairs = []
        for enc, name in zip(self._names, self._inputs, strict=True):
            h = self.input_hash(name, sequence)
            pairs.append(f'{enc}:"{h}"' if h is not None else f"{enc}:null")
        inputs = ",".join(pairs)
        text = f'{{"frame":"{self.frames[sequence]}","inputs":{{{inputs}}}{self._tail}'
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def frame_inputs(self, sequence: int) -> tuple[str, dict[str, str | None]]:
        """(frame hash, input stage -> hash) of one frame: a memo entry's key parts."""
        return self.frames[sequence], {n: self.input_hash(n, sequence) for n in self._inputs}

    def digests(self, sequences: Sequence[int]) -> dict[int, str]:
        return {s: self.digest(s) for s in sequences}


# -- code versions --------------------------------------------------------------------------


def code_version(fn: Callable[..., Any]) -> str:
    """A version string for a stage function: the SHA-256 of its source with comments,
    docstrings and formatting taken out (what Hamilton does), so editing a comment keeps
    the memo and editing the code does not. Only fn's own source counts: a change in a
    function it calls is not seen (pass version= yourself when that matters). A lambda's
    source is its whole line (statement): its version is that line's, with which of the
    line's lambdas it is when there are several.

    Code whose source cannot be read (run with exec, typed at a plain prompt) is versioned
    by its compiled code instead ("bytecode:" + SHA-256, without the docstring; stable
    for one Python version). InvalidInputError for what has neither (builtins).

    A ``functools.partial`` is its function's version with the arguments it binds: the
    SHA-256 of that version and the canonical JSON of ``{"args": [...], "keywords":
    {...}}`` (so ``partial(f, thr=0.5)`` and ``partial(f, thr=0.7)`` differ, and equal
    bindings give equal versions in every process); a partial that binds nothing is its
    function's version. InvalidInputError when a bound argument is not JSON (a model
    object: pass version= yourself, naming its weights)."""
    if isinstance(fn, functools.partial) and (fn.args or fn.keywords):
        base = code_version(fn.func)
        try:  # the canonical JSON of {"args": [...], "keywords": {...}}, keys in order
            bound = b'{"args":%s,"keywords":%s}' % (
                canonical_bytes(list(fn.args), "bound args"),
                canonical_bytes(dict(fn.keywords), "bound keywords"))
        except InvalidInputError as exc:
            name = getattr(fn.func, "__qualname__", None) or repr(fn.func)
            raise InvalidInputError(
                f"cannot make the code version of a partial of {name}: {exc}. Pass "
                "version='...' to begin_run yourself (naming what the argument is, "
                "such as a model's weights)") from None
        kind, _, _ = base.rpartition(":")
        mixed = hashlib.sha256(base.encode("utf-8") + b"\n" + bound).hexdigest()
        return f"{kind}:{mixed}" if kind else mixed
    target = inspect.unwrap(getattr(fn, "func", fn))  # functools.partial / wraps
    try:
        lines, first = inspect.getsourcelines(target)
        source = textwrap.dedent("".join(lines))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError, IndentationError) as exc:
        code = getattr(target, "__code__", None)
        if code is None:
            raise InvalidInputError(
                f"cannot read the source of {fn!r} to make its code version ({exc}); pass "
                "version='...' to begin_run yourself") from None
        digest = hashlib.sha256()
        _hash_code(code, True, digest)
        return "bytecode:" + digest.hexdigest()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    text = ast.unparse(tree)
    if getattr(target, "__name__", None) == "<lambda>":
        # a lambda's source is its whole line: two lambdas there must not share a version
        shift = len(lines[0]) - len(source.splitlines(keepends=True)[0])
        text += _which_lambda(target, tree, first, shift)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _which_lambda(fn: Any, tree: ast.AST, first: int, shift: int) -> str:
    """What tells a lambda from the others of its source lines (tree, parsed from the
    lines from line first on, dedented by shift columns): "" when it is the only one
    (its version is its lines'), else which one it is, found by the positions of its
    code's instructions (inside its body, and in no lambda nested in it), or failing
    that (no positions), its compiled code."""
    lambdas = sorted((n for n in ast.walk(tree) if isinstance(n, ast.Lambda)),
                     key=lambda n: (n.lineno, n.col_offset))
    if len(lambdas) < 2:
        return ""
    spots = [(line - first + 1, col - shift, end - first + 1, end_col - shift)
             for line, end, col, end_col in fn.__code__.co_positions()
             if None not in (line, end, col, end_col) and (line, col) != (end, end_col)]

    def holds(node: ast.Lambda) -> bool:
        body = node.body
        start = (body.lineno, body.col_offset)
        stop = (body.end_lineno or body.lineno, body.end_col_offset or 0)
        return all(start <= (a, b) and (c, d) <= stop for a, b, c, d in spots)

    found = [i for i, node in enumerate(lambdas) if holds(node)] if spots else []
    if found:  # the innermost: a lambda nested in another is inside its body too
        i = max(found, key=lambda i: (lambdas[i].body.lineno, lambdas[i].body.col_offset))
        return f"\n# lambda {i + 1} of {len(lambdas)}"
    digest = hashlib.sha256()
    _hash_code(fn.__code__, True, digest)
    return f"\n# lambda {digest.hexdigest()}"


def _hash_code(code: Any, function: bool, digest: Any) -> None:
    """Feed a code object (and the ones nested in it) to digest: instructions, names and
    constants; not line numbers, not the docstring (a function's first constant: its
    docstring or None)."""
    digest.update(code.co_code)
    digest.update(repr((code.co_names, code.co_varnames, code.co_freevars)).encode())
    for i, const in enumerate(code.co_consts):
        if function and i == 0 and (const is None or isinstance(const, str)):
            continue
        if hasattr(const, "co_code"):
            _hash_code(const, False, digest)
        else:
            digest.update(_constant(const).encode())


def _constant(const: Any) -> str:
    """A code constant as text that is the same in every process: a frozenset's (``x in
    {"a", "b"}``) elements sorted, as its repr orders them by hash, which differs from
    one process to the next for strings (PYTHONHASHSEED). Any other constant: its repr,
    so the versions of code without frozensets are what they were."""
    if isinstance(const, frozenset):
        return "frozenset({" + ", ".join(sorted(map(_constant, const))) + "})"
    if isinstance(const, tuple):  # as its repr, but for the frozensets inside
        return "(" + ", ".join(map(_constant, const)) + ("," if len(const) == 1 else "") + ")"
    return repr(const)
