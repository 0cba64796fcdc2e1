"""Progress reporting for long transfers: None, True (a tqdm bar), a bar, or a callable."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from .errors import InvalidInputError

__all__ = ["Progress", "Reporter"]

#: progress(phase, done, total): phase is "objects" (frame shards and indexes),
#: "outputs" or "rows"; done counts items of that phase so far.
Progress = Callable[[str, int, int], None]


class Reporter:
    """Adapts None, True (a tqdm bar), a tqdm-like object or a callable."""

    def __init__(self, progress: Any, desc: str, unit: str = "item",
                 show_phase: bool = True) -> None:
        """unit: what the bar counts; show_phase False: a phase that only repeats the
        unit (a run's "frames") is not drawn after the bar (callbacks still get it)."""
        self.show_phase = show_phase
        self.callback: Progress | None = None
        self.bar: Any = None
        self.own_bar = False
        #: makes our own bar, once the total is known (made before it, tqdm drew a
        #: "0item" bar that stayed in logs)
        self._make: Callable[[int], Any] | None = None
        if progress is None or progress is False:
            return
        if progress is True:
            try:
                from tqdm.auto import tqdm
            except ImportError as exc:
                raise InvalidInputError(
                    "progress=True needs tqdm: pip install 'localckpt[progress]'"
                ) from exc
            self._make = lambda total: tqdm(total=total, desc=desc, unit=unit,
                                            file=sys.stderr, leave=False)
            self.own_bar = True
        elif hasattr(progress, "update") and hasattr(progress, "total"):
            self.bar = progress
        elif callable(progress):
            self.callback = progress
        else:
            raise InvalidInputError(
                "progress must be None, True, a tqdm bar or a function(phase, done, total), "
                f"not {type(progress).__name__}"
            )

    def start(self, total: int) -> None:
        if self._make is not None and self.bar is None:
            self.bar = self._make(total)
            return
        if self.bar is not None:
            self.bar.total = total
            if hasattr(self.bar, "refresh"):
                self.bar.refresh()

    def step(self, phase: str, done: int, total: int, advance: int = 1) -> None:
        if self.callback is not None:
            self.callback(phase, done, total)
        if self.bar is None and self._make is not None:
            self.bar = self._make(total)
        if self.bar is not None and advance:
            self.bar.update(advance)
            if self.show_phase and hasattr(self.bar, "set_postfix_str"):
                self.bar.set_postfix_str(phase, refresh=False)

    def close(self) -> None:
        if self.own_bar and self.bar is not None:
            self.bar.close()
