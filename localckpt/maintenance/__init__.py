"""Keeping a store trustworthy and small: verify, delete, prune, retain, tags.

- :mod:`.delete`: ``delete_timeline``, ``prune``, ``retain`` (tombstones, :class:`PruneReport`);
- :mod:`.tags`: ``tag``, ``untag`` (tags are records; untag is a tombstone);
- :mod:`.verify`: ``verify`` (:class:`VerifyReport`);
- ``localckpt.gc``: frees what deletions and failed writes left behind.

Deleting writes tombstones and nothing else, so it is instant, all or nothing, and
travels with sync; space comes back when ``gc`` runs. The Store's methods delegate here.
"""

from .reports import Problem, PruneReport, VerifyReport

__all__ = ["Problem", "PruneReport", "VerifyReport"]
