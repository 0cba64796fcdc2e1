"""What every shipped machine shares: the hooks that choose and reopen its store."""

from __future__ import annotations

import shutil
import tempfile

from hypothesis.stateful import RuleBasedStateMachine

from ...store import Store

__all__ = ["StoreMachine"]


class StoreMachine(RuleBasedStateMachine):
    """A state machine that drives ``self.store``. Override the hooks to choose it:

    - :meth:`make_store`: a fresh, empty store (default: a memory store);
    - :meth:`can_reopen` / :meth:`reopen_store`: close it and open the same data again;
    - :meth:`close_store`: called at teardown.
    """

    def __init__(self) -> None:
        super().__init__()
        self._tmp_dirs: list[str] = []
        self.store: Store = self.make_store()

    def make_store(self) -> Store:
        """The store to drive: a fresh, empty one. Default: a memory store."""
        import localckpt

        return localckpt.open("memory://")

    def can_reopen(self) -> bool:
        """Whether reopen_store works (memory stores cannot be reopened)."""
        return False

    def reopen_store(self, store: Store) -> Store:
        """Close store and open the same data again."""
        raise NotImplementedError("override reopen_store (and can_reopen) to test reopening")

    def close_store(self, store: Store) -> None:
        store.close()

    def tmp_dir(self) -> str:
        """A temporary directory removed at teardown (for make_store)."""
        path = tempfile.mkdtemp(prefix="localckpt-machine-")
        self._tmp_dirs.append(path)
        return path

    def teardown(self) -> None:
        try:
            self.close_store(self.store)
        finally:
            for path in self._tmp_dirs:
                shutil.rmtree(path, ignore_errors=True)
