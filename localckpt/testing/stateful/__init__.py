"""Hypothesis state machines over localckpt stores, to run as they are or to subclass.

- :class:`CheckpointMachine` (:mod:`.checkpoints`): one store against
  :class:`~localckpt.testing.TreeModel`: save, fork, scenarios, rejected parents, loads,
  reopen. Subclass it to add rules for your own stages.
- :class:`LockstepMachine` (:mod:`.lockstep`): the same random records committed to the
  memory catalog and to a real one, every read compared at every step (as hypothesis
  checks its example databases against each other).
- The multi-store machine (merge, sync, bundles, deletions: ``SyncMachine``) lives in
  :mod:`.sync`.

Both take their store from the hooks of :class:`StoreMachine` (``make_store``, ...).
They need hypothesis (``pip install 'localckpt[test]'``); importing this package
without it raises ImportError naming it. Run one with ``TestX = Machine.TestCase`` in a
test module, or ``hypothesis.stateful.run_state_machine_as_test(Machine)``.
"""

from __future__ import annotations

from ._base import StoreMachine
from .checkpoints import CheckpointMachine
from .lockstep import LockstepMachine
from .sync import SyncMachine

__all__ = ["CheckpointMachine", "LockstepMachine", "StoreMachine", "SyncMachine"]
