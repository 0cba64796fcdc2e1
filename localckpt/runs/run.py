"""StageRun: one stage over one timeline, written frame by frame, committed once.

A run is a record in the catalog; what it has been given so far are its parts, each a
frame's value in the row of the put that wrote it (``localckpt.backends.sql.runs``). So
a run survives its process: ``store.get_run(id)`` in any process that opens the same
store (any machine, on PostgreSQL + S3) continues it, and after a crash ``todo()`` is
exactly what is missing. ``put`` is one short transaction: durable when it returns,
all of it or none.

Semantics:

- ``put({sequence: value})``: an equal value again is a no-op; another value for a frame
  already written is ConflictError; an unknown sequence, a non-integer one or a value
  that is not JSON (NaN, a value that contains itself, ...) is InvalidInputError. In
  each case nothing of that put is written.
- ``todo()``: the timeline's sequences that have no part and that the memo does not
  answer, ascending. The memo answers a frame when any run (open or closed, of any
  timeline of the store, with memo on) wrote a value under the same key
  (``localckpt.runs.memo``): a closed run's values are memo entries, an open run's are
  its parts (of the same stage, version and params), until it closes.
- ``commit()``: saves one checkpoint whose stage output is
  ``{"frames": {"<sequence>": value, ...}}`` over every frame written or answered by the
  memo, exactly as ``save_stage_output`` with that dict would (same canonical bytes, same
  hash; the bytes are assembled from the stored bytes of each value, in the key order
  canonical JSON sorts them). It refuses while ``todo()`` is not empty unless
  ``partial=True``. Committing twice returns the same id; a commit interrupted by a crash
  is finished by the next ``commit()`` (the checkpoint's id is chosen, and puts refused,
  when it begins). The same transaction that marks the run committed makes its parts memo
  entries, pointing at their values inside the checkpoint's output; the parts are read
  no more, and gc deletes them.
- ``abort()``: the run takes no more values. Its parts become memo entries as at a commit
  (their values written as an output of their own: a value depends only on its key;
  none once the keys cannot be made, its timeline or its parent checkpoint gone), and
  gc deletes the parts. Memo entries are kept until ``clear_memo``.
- A deletion (``prune``, ``retain``, ``rm``) of a run's timeline or parent checkpoint
  aborts the run in the same transaction (``localckpt.runs.closing``; gc closes those a
  deletion did not); a later put or commit is refused saying so.
"""

from __future__ import annotations

import numbers
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from ..arguments import shown
from ..canonical import (
    _census_is_plain,
    canonical_bytes,
    checked_bytes,
    content_hash,
    record_bytes,
)
from ..errors import (
    ConflictError,
    CorruptDataError,
    InvalidInputError,
    LocalckptError,
    NotFoundError,
)
from ..gcpause import gc_paused
from ..ids import new_id
from ..records import utcnow
from ..refs import listing_here
from .location import StoreLocation
from .memo import FrameKeys, MemoKey
from .records import RunRecord

if TYPE_CHECKING:
    from ..backends.sql.runs import RunTables
    from ..store import Store

__all__ = ["RunStatus", "StageRun"]

_ATTEMPTS = 5


@attrs.frozen
class RunStatus:
    """A run as seen at one moment: what the ``runs`` command and the web view show.

    done: frames written; memo_hits: frames the memo answers (and no put wrote);
    todo: what is left (total - done - memo_hits while open, 0 once closed).
    checkpoint_id: chosen when the commit began; None before, and for an aborted run
    whose checkpoint was never saved.
    orphaned: for an open run whose timeline was deleted or whose parent checkpoint was
    pruned, what is gone (it can never be committed: abort it); else None. Its memo hits
    are not looked up (0).
    """

    id: str
    timeline_id: str
    parent_id: str
    stage: str
    version: str
    state: str
    done: int
    memo_hits: int
    total: int
    todo: int
    memo: bool
    created_at: datetime
    checkpoint_id: str | None
    orphaned: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = attrs.asdict(self)
        d["created_at"] = self.created_at.isoformat()
        return d


class _Context:
    """What a run's puts and todo need from the timeline, read once per StageRun: the
    frame sequences and, for memo runs, the keys (frame index + the parent's inputs)."""

    def __init__(self, sequences: list[int], keys: FrameKeys | None) -> None:
        self.sequences = sequences
        self.known = frozenset(sequences)
        self.keys = keys


def _reopen(location: StoreLocation, run_id: str) -> StageRun:
    """Unpickling: the run in a store this process opens itself (on first use)."""
    run = StageRun(None, run_id, location=location)
    run._unpickled = True
    return run


class StageRun:
    """A stage run (see the module docstring). Made by ``store.begin_run`` or
    ``store.get_run``; picklable to (store location, id): a worker that unpickles it
    opens the store itself, and ``close()`` closes that store again."""

    def __init__(self, store: Store | None, run_id: str, *, record: RunRecord | None = None,
                 location: StoreLocation | None = None) -> None:
        self.id = run_id
        self._store = store
        self._owns_store = store is None
        self._location = location
        self._record = record
        self._context: _Context | None = None
        self._lock = threading.Lock()
        #: made by unpickling: a worker's task keeps its store (localckpt.runs.workers)
        self._unpickled = False

    # -- the store --------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        with self._lock:
            if self._store is None:
                assert self._location is not None
                self._store = self._location.open()
            return self._store

    @property
    def _tables(self) -> RunTables:
        return self.store._run_tables()

    def close(self) -> None:
        """Close the store this run opened itself (an unpickled run); else nothing."""
        with self._lock:
            if self._owns_store and self._store is not None:
                self._store.close()
                self._store = None
                self._context = None

    def __enter__(self) -> StageRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce__(self) -> tuple[Any, ...]:
        location = self._location or StoreLocation.of(self.store)
        return (_reopen, (location, self.id))

    def __repr__(self) -> str:
        rec = self._record
        what = f" {rec.stage} on {rec.timeline_id}" if rec is not None else ""
        return f"<StageRun {self.id}{what}>"

    # -- the record -------------------------------------------------------------------------

    @property
    def record(self) -> RunRecord:
        """The run's row as stored now."""
        found = self._tables.get(self.id)
        if found is None:
            raise NotFoundError(f"no run {self.id!r} in {self.store.catalog.describe()}")
        self._record = found
        return found

    def _fixed(self) -> RunRecord:
        """The record as last read (for the fields that never change)."""
        return self._record if self._record is not None else self.record

    @property
    def timeline_id(self) -> str:
        return self._fixed().timeline_id

    @property
    def parent_id(self) -> str:
        """The checkpoint the commit saves a child of (the root when begun with None)."""
        return self._fixed().parent_id

    @property
    def stage(self) -> str:
        return self._fixed().stage

    @property
    def version(self) -> str:
        return self._fixed().version

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._fixed().params)

    @property
    def inputs(self) -> tuple[str, ...]:
        return self._fixed().inputs

    @property
    def memo(self) -> bool:
        """Whether the run reads and writes the per-frame memo."""
        return self._fixed().memo

    @property
    def total(self) -> int:
        """Frames of the timeline: the run covers every one."""
        return self._fixed().total

    @property
    def created_at(self) -> datetime:
        return self._fixed().created_at

    @property
    def state(self) -> str:
        """"open", "committing" (a commit began), "committed" or "aborted"."""
        return self.record.state

    @property
    def checkpoint_id(self) -> str | None:
        """The committed checkpoint's id (chosen when the commit began), else None (also
        for a run aborted after its commit began: that checkpoint was never saved)."""
        return self._checkpoint_of(self.record)

    def _checkpoint_of(self, rec: RunRecord) -> str | None:
        """rec's checkpoint id, None for an aborted run whose checkpoint is not saved (its
        commit began, then a crash, an abort or a deletion stopped it: the id names no
        checkpoint, and never will)."""
        if rec.state == "aborted" and rec.checkpoint_id is not None and \
                not self.store.catalog.checkpoints([rec.checkpoint_id]):
            return None
        return rec.checkpoint_id

    @property
    def done(self) -> int:
        """Frames written by puts."""
        rec = self.record
        if rec.done is not None:
            return rec.done
        return self._tables.done(self.id)

    @property
    def memo_hits(self) -> int:
        """Frames the memo answers that no put wrote."""
        rec = self.record
        if rec.state not in ("open", "committing"):
            return rec.memo_hits or 0
        if self._orphaned(rec):
            return 0
        return len(self._answers()[1])

    def status(self) -> RunStatus:
        """The counts and state at one moment (a few reads; keys for memo runs)."""
        rec = self.record
        orphaned = None
        if rec.state in ("open", "committing"):
            orphaned = self._orphaned(rec)
            if orphaned:  # nothing to key frames by: its parts only
                done, memo_hits = self._tables.done(rec.id), 0
            else:
                parts, hits = self._answers()
                done, memo_hits = len(parts), len(hits)
            left = rec.total - done - memo_hits
        else:
            done, memo_hits, left = rec.done or 0, rec.memo_hits or 0, 0
        return RunStatus(rec.id, rec.timeline_id, rec.parent_id, rec.stage, rec.version,
                         rec.state, done, memo_hits, rec.total, left, rec.memo,
                         rec.created_at, self._checkpoint_of(rec), orphaned)

    def _orphaned(self, rec: RunRecord) -> str | None:
        """What an open run lost that its commit needs (its timeline was deleted, its parent
        checkpoint pruned), or None."""
        from .closing import orphaned_by

        return orphaned_by(self.store, rec)

    def _refuse_closed(self, what: str) -> None:
        """InvalidInputError for a put or commit (what) into a run that a deletion of
        its base closed, saying so; else nothing (the caller's own error stands)."""
        from .closing import closed_because

        rec = self.record
        why = closed_because(self.store, rec)
        if why:
            raise InvalidInputError(
                f"run {rec.id} was aborted because {why} (a deletion closes the runs that "
                f"depend on what it deletes): it takes no more values; {what}. Begin a new "
                "run on a live checkpoint")

    def _refuse_orphaned(self, rec: RunRecord) -> None:
        """NotFoundError saying what is gone, for a run that can never be committed."""
        why = self._orphaned(rec)
        if why:
            short = self.store.short_id(rec.id, "run")
            raise NotFoundError(f"run {rec.id}: {why}, so it can never be committed; abort it "
                                f"(run.abort(), or "
                                f"{listing_here(self.store, f'`localckpt run abort {short}`')})")

    # -- what is left -----------------------------------------------------------------------

    def _ctx(self) -> _Context:
        if self._context is None:
            self._context = self._build_context()
        return self._context

    def _build_context(self) -> _Context:
        from ..framediff import frames_of

        rec = self._fixed()
        store = self.store
        index = store.frame_index(rec.timeline_id)
        sequences = sorted(m.sequence for m in index)
        keys = None
        if rec.memo:
            parent = store.catalog.peek_checkpoint(rec.parent_id)
            if parent is None:
                raise NotFoundError(f"run {rec.id}: its parent checkpoint {rec.parent_id} is "
                                    f"gone from {store.catalog.describe()}")
            inputs = {}
            for name in rec.inputs:
                value = store.load_stage_output(parent.id, name)
                inputs[name] = frames_of(value, f"stage {name!r} of checkpoint {parent.id}")
            keys = FrameKeys(rec.stage, rec.version, rec.params,
                             {m.sequence: m.content_hash for m in index}, inputs)
        return _Context(sequences, keys)

    def memo_key(self, sequence: int) -> MemoKey:
        """The memo key of one frame, part by part (what a hit or a miss depends on)."""
        ctx = self._ctx()
        seq = _sequence(sequence, "")
        if seq not in ctx.known:
            short = self.store.short_id(self.timeline_id, "timeline")
            raise NotFoundError(f"timeline {self.timeline_id} has no frame {seq}",
                                cli=f"timeline {short} has no frame {seq} (it has "
                                f"{len(ctx.known)}, sequences {min(ctx.known, default=0)} to "
                                f"{max(ctx.known, default=-1)})")
        if ctx.keys is None:
            raise InvalidInputError(f"run {self.id} has the memo off (memo=False): its "
                                    "frames have no memo keys")
        return ctx.keys.key(seq)

    def _answers(self, limit: int | None = None, parts: dict[int, str] | None = None
                 ) -> tuple[dict[int, str], dict[int, str]]:
        """(sequence -> value hash of the parts, sequence -> memo key of the memo hits
        among the rest). With limit: memo lookups stop once limit frames are known to be
        left to do. parts: the run's parts as just read (else they are read)."""
        ctx = self._ctx()
        if parts is None:
            parts = self._tables.parts(self.id)
        hits: dict[int, str] = {}
        if ctx.keys is None:
            return parts, hits
        rest = [s for s in ctx.sequences if s not in parts]
        left = 0
        step = 4096 if limit is None else max(64, 2 * limit)
        for i in range(0, len(rest), step):
            chunk = rest[i:i + step]
            digests = ctx.keys.digests(chunk)
            found = self._tables.answers(digests.values(), self._fixed())
            for s, d in digests.items():
                if d in found:
                    hits[s] = d
                else:
                    left += 1
            if limit is not None and left >= limit:
                break
        return parts, hits

    def todo(self, limit: int | None = None) -> list[int]:
        """Sequences neither written nor answered by the memo, ascending (at most limit);
        [] once the run is committed or aborted."""
        if limit is not None:  # an int, or another integer type (numpy's), as sequences are
            if isinstance(limit, bool) or not isinstance(limit, numbers.Integral) or limit < 0:
                raise InvalidInputError(f"limit must be a non-negative integer or None, not "
                                        f"{type(limit).__name__} {shown(limit)}")
            limit = int(limit)
        rec = self.record
        if rec.state not in ("open", "committing"):
            return []
        self._refuse_orphaned(rec)
        parts, hits = self._answers(limit)
        todo = [s for s in self._ctx().sequences if s not in parts and s not in hits]
        return todo if limit is None else todo[:limit]

    # -- writing ----------------------------------------------------------------------------

    def put(self, values: Mapping[int, Any]) -> None:
        """Write values of frames ({sequence: JSON value}); durable when it returns, all
        or nothing (see the module docstring for what is refused)."""
        self._put(values)

    def _put(self, values: Mapping[int, Any], keys: Mapping[int, MemoKey] | None = None,
             allowed: Iterable[int] | None = None) -> int:
        """put, with keys already made (a worker of map: the caller computed them) and
        the sequences allowed (the chunk it was given). Returns the frames written."""
        if not isinstance(values, Mapping):
            raise InvalidInputError(f"put takes a mapping of sequence -> value, not "
                                    f"{type(values).__name__}")
        rec = self._fixed()
        try:
            with gc_paused():
                return self._put_in(rec, values, keys, allowed)
        except LocalckptError as exc:
            if isinstance(exc, InvalidInputError | NotFoundError):
                # a closed run (its context may be gone with its base): say why
                self._refuse_closed("nothing of this put was written")
            raise

    def _put_in(self, rec: RunRecord, values: Mapping[int, Any],
                keys: Mapping[int, MemoKey] | None, allowed: Iterable[int] | None) -> int:
        known = frozenset(allowed) if allowed is not None else self._ctx().known
        items: dict[int, Any] = {}
        for k, value in values.items():
            seq = _sequence(k, "; nothing of this put was written")
            if seq not in known:
                raise InvalidInputError(
                    f"timeline {rec.timeline_id} has no frame {seq} to put a value for"
                    + (" in this chunk" if allowed is not None else "")
                    + "; nothing of this put was written")
            if seq in items:
                raise InvalidInputError(f"sequence {seq} is given twice in this put; nothing "
                                        "was written")
            items[seq] = value
        if not items:
            return 0
        encoded = _encode(items)
        digest_of: Callable[[int], str | None] = lambda seq: None  # noqa: E731
        if rec.memo:
            if keys is None:
                fk = self._ctx().keys
                assert fk is not None
                digest_of = fk.digest
            else:
                digest_of = lambda seq: keys[seq].digest  # noqa: E731
        self._tables.put(rec.id, [(seq, h, data, digest_of(seq)) for seq, h, data in encoded])
        return len(encoded)

    # -- committing -------------------------------------------------------------------------

    def commit(self, partial: bool = False) -> str:
        """Save the run's checkpoint and return its id (see the module docstring)."""
        if not isinstance(partial, bool):
            raise InvalidInputError(f"partial must be True or False, not {shown(partial)}")
        with gc_paused():
            return self._commit(partial)

    def _commit(self, partial: bool) -> str:
        for _ in range(_ATTEMPTS):
            rec = self.record
            if rec.state == "committed":
                assert rec.checkpoint_id is not None
                return rec.checkpoint_id
            if rec.state == "aborted":
                self._refuse_closed("it cannot be committed")
                raise InvalidInputError(f"run {rec.id} was aborted; it cannot be committed "
                                        "(begin a new run)")
            if rec.state == "open" or not self.store.catalog.checkpoints(
                    [rec.checkpoint_id or ""]):
                self._refuse_orphaned(rec)  # before the state changes: nothing is written
            if rec.state == "open":
                values = self._tables.part_values(rec.id)
                answers = self._answers(parts={s: v[0] for s, v in values.items()})
                self._refuse_missing(rec, *answers, partial)
                chosen = new_id()
                rec = self._tables.change(rec.id, _begin_commit(chosen, utcnow()))
                if rec.checkpoint_id == chosen and not partial and \
                        self._tables.done(rec.id) == len(values):
                    # every frame was answered, and no put landed since the parts were
                    # read (parts only grow, and none come once the commit began); a put
                    # of a frame the memo answered may have (another value wins over the
                    # memo's): then _finish reads the parts again
                    return self._finish(rec, partial, answers, values)
                continue
            return self._finish(rec, partial)
        raise ConflictError(f"run {self.id}: other processes kept changing its state; "
                            "call commit() again")

    def _refuse_missing(self, rec: RunRecord, parts: dict[int, str], hits: dict[int, str],
                        partial: bool) -> None:
        if partial:
            return
        missing = rec.total - len(parts) - len(hits)
        if missing > 0:
            first = [s for s in self._ctx().sequences if s not in parts and s not in hits][:5]
            left = (f"has {missing} of {rec.total} frames still to do (first: "
                    f"{', '.join(map(str, first))}); ")
            short = self.store.short_id(rec.id, "run")
            raise InvalidInputError(
                f"run {rec.id} {left}put them (run.todo() lists them), or "
                "commit(partial=True) to save what is there",
                cli=f"run {short} {left}put them "
                f"({listing_here(self.store, f'`localckpt run show {short}`')} lists them), "
                "or give --partial to save what is there")

    def _finish(self, rec: RunRecord, partial: bool,
                answers: tuple[dict[int, str], dict[int, str]] | None = None,
                values: dict[int, tuple[str, str | None, bytes]] | None = None) -> str:
        """The commit began (state committing): save the checkpoint if it is not there
        yet, then mark the run committed (its memo entries point into
        the checkpoint's output; when an earlier commit call saved it, the values are
        written as an output of their own instead)."""
        store = self.store
        chosen = rec.checkpoint_id
        assert chosen is not None and rec.closed_at is not None
        if values is None or answers is None:
            values = self._tables.part_values(rec.id)
            answers = self._answers(parts={s: v[0] for s, v in values.items()})
        parts, hits = answers
        source = None
        if not store.catalog.checkpoints([chosen]):
            if not partial and rec.total - len(parts) - len(hits) > 0:
                # the memo lost entries since the commit began: open again, then refuse
                self._tables.change(rec.id, lambda old, tx: attrs.evolve(
                    old, state="open", checkpoint_id=None, closed_at=None)
                    if old.state == "committing" and old.checkpoint_id == chosen else None)
                self._refuse_missing(rec, parts, hits, partial)
            data, where = self._output_bytes({s: values[s][2] for s in parts}, hits)
            source = (content_hash(data), where)
            try:
                store._save_run_checkpoint(rec, data, source[0])
            except ConflictError:  # saved by another call, or closed by a deletion
                if not store.catalog.checkpoints([chosen]):
                    self._refuse_closed("it cannot be committed")
                    raise
            except NotFoundError:  # its parent deleted since this commit read the run
                self._refuse_closed("it cannot be committed")
                raise
        done = self._tables.change(rec.id, lambda old, tx: attrs.evolve(
            old, state="committed", done=len(parts), memo_hits=len(hits))
            if old.checkpoint_id == chosen and old.state in ("committing", "aborted") else None,
            close=lambda new: new.state == "committed", memo_of=self._memo_of(),
            source=None if source is None else (*source, {
                s: (h, key) for s, (h, key, _) in values.items() if s in parts}))
        if done.state != "committed" or done.checkpoint_id != chosen:
            raise ConflictError(f"run {rec.id} changed while it was committed (now "
                                f"{done.state}); nothing more was done")
        return chosen

    def _output_bytes(self, parts: dict[int, bytes], hits: dict[int, str]
                      ) -> tuple[bytes, dict[int, tuple[int, int]]]:
        """The canonical bytes of {"frames": {"<seq>": value}} from each value's stored
        bytes (the run's parts, the memo's entries for the hits), and where each value
        lies in them (frames_output)."""
        from ..backends.sql.runs import frames_output  # it imports this package's records

        data = dict(parts)
        held = self._tables.answer_bytes(hits.values(), self._fixed())
        if (missing := len(set(hits.values()) - held.keys())):
            raise CorruptDataError(
                f"run {self.id}: {missing} frame value(s) are gone from "
                f"{self.store.catalog.describe()} (memo entries cleared while this commit "
                "ran?); call commit() again")
        data.update((s, held[k]) for s, k in hits.items())
        return frames_output(data)

    def abort(self) -> None:
        """Stop the run: it takes no more values, its parts become memo entries (when
        their keys can be made: not once its timeline, or the parent checkpoint its
        inputs are read from, is deleted) and gc deletes them. Aborting twice is a no-op;
        a committed run cannot be aborted (prune its checkpoint instead)."""
        self._abort()

    def _abort(self) -> bool:
        """abort(); whether the run's values stay in the memo: for this call's abort, memo
        on and the keys of its frames could be made; for a run aborted before, whether
        the memo holds values it wrote (what that abort kept, unless cleared since)."""
        from .closing import aborting

        rec = self.record
        if rec.state == "committing" and rec.checkpoint_id and \
                self.store.catalog.checkpoints([rec.checkpoint_id]):
            raise InvalidInputError(
                f"run {rec.id} already saved its checkpoint {rec.checkpoint_id}: call "
                "commit() to finish it, then prune that checkpoint if you do not want it",
                cli=f"run {rec.id} already saved its checkpoint {rec.checkpoint_id}: finish "
                f"it with {listing_here(self.store, f'`localckpt run commit {rec.id}`')}, then "
                f"{listing_here(self.store, f'`localckpt prune {rec.checkpoint_id}`')} if you "
                "do not want it")
        if rec.state == "aborted":  # nothing changes
            return rec.memo and self._tables.wrote_memo(rec.id)
        memo_of = self._memo_of(best_effort=True)
        self._tables.change(self.id, aborting(self._tables),
                            close=lambda new: new.state == "aborted", memo_of=memo_of)
        return memo_of is not None

    # -- workers ----------------------------------------------------------------------------

    def map(self, fn: Callable[[list[Any]], Mapping[int, Any]], executor: Any = None,
            chunk_size: int = 64, progress: Any = None) -> int:
        """Compute todo()'s frames with fn(frames) -> {sequence: value}, chunk by chunk,
        each chunk written as it is done (see ``localckpt.runs.workers``). executor: any
        ``concurrent.futures.Executor`` (a process pool, Dask's client.get_executor());
        None runs here. Returns the frames written."""
        from .workers import map_run

        return map_run(self, fn, executor, chunk_size, progress)

    def _frames(self, sequences: list[int]) -> list[Any]:
        """Frames with pixels for sequences (ascending), one read per contiguous run."""
        store, tid = self.store, self.timeline_id
        out: list[Any] = []
        start = 0
        while start < len(sequences):
            end = start
            while end + 1 < len(sequences) and sequences[end + 1] == sequences[end] + 1:
                end += 1
            out.extend(store.get_timeline_frames(tid, sequences[start], sequences[end] + 1))
            start = end + 1
        return out

    def _memo_of(self, best_effort: bool = False
                 ) -> Callable[[int], tuple[str, dict[str, str | None]]] | None:
        """What a closing run's parts become memo entries by (FrameKeys.frame_inputs),
        None for a run with the memo off. best_effort (abort): None too when the keys
        cannot be made (the parent checkpoint is gone), and the parts go without entries."""
        if not self._fixed().memo:
            return None
        try:
            keys = self._ctx().keys
        except LocalckptError:
            if not best_effort:
                raise
            return None
        return None if keys is None else keys.frame_inputs

    def _keys_for(self, sequences: list[int]) -> dict[int, MemoKey] | None:
        keys = self._ctx().keys
        return None if keys is None else {s: keys.key(s) for s in sequences}


# -- helpers --------------------------------------------------------------------------------


def _begin_commit(chosen: str, when: datetime) -> Callable[[RunRecord, Any], RunRecord | None]:
    """The state change that begins a commit: its checkpoint's id and time are chosen."""
    def decide(old: RunRecord, tx: Any) -> RunRecord | None:
        if old.state != "open":
            return None
        return attrs.evolve(old, state="committing", checkpoint_id=chosen, closed_at=when)

    return decide


def _sequence(value: Any, after: str) -> int:
    """value as a frame sequence; InvalidInputError (its message ending in after) when it
    is not an int."""
    if type(value) is int:
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidInputError(
            f"a frame sequence must be an int, not {type(value).__name__} {shown(value)}"
            + after)
    return int(value)


def _encode(items: dict[int, Any]) -> list[tuple[int, str, bytes]]:
    """(sequence, content hash, canonical bytes) of each frame's value, ascending.

    The values are checked together, inside the output the commit will make
    ({"frames": {"<sequence>": value}}: one pass over every object, and a value too deep
    to nest there is refused now, not at the commit). Each value is encoded alone, once:
    when orjson writes every one by itself (nothing deeper than it nests) and the census
    of the output finds only plain JSON in them (its nulls counted in their bytes, which
    are the output's values), those are the canonical bytes; else the output is encoded
    as canonical_bytes does it (refusing what is not JSON, naming where), then each value
    again (an unusual but valid value: a numpy scalar, a str subclass)."""
    order = sorted(items)
    datas: list[bytes] = []
    try:
        for seq in order:
            data, plain = record_bytes(items[seq])
            if not plain:
                break
            datas.append(data)
    except (InvalidInputError, RecursionError):  # refused below, saying where
        pass
    wrapped = {"frames": {str(s): v for s, v in items.items()}}
    if len(datas) < len(order) or not _census_is_plain(wrapped, b",".join(datas)):
        canonical_bytes(wrapped, "the output")
        datas = [checked_bytes(items[seq]) for seq in order]
    return [(seq, content_hash(data), data) for seq, data in zip(order, datas, strict=True)]
