"""MonitoringBudget: monitoring that costs at most a set share of the training time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["MonitoringBudget"]


class MonitoringBudget:
    """Lets per-epoch monitoring work run only while it costs at most `share` of training.

    Histograms of every weight and gradient and a checkpoint of the whole training state
    cost a fixed time per epoch (about 0.5-1 s of CPU for a 20M-parameter network), which
    is a large share of a short epoch and a negligible one of a long epoch. Shared by the
    monitoring callbacks of one ``fit`` (``GradientHistogram``, ``WeightHistogram``,
    ``RunCheckpoint``: their ``budget`` argument), it keeps their total cost, measured on
    the training thread and in their background threads, at most `share` of the time spent
    training: each callback asks :meth:`allow` at the end of an epoch and skips that
    epoch's work when its last cost would exceed the budget. With epochs long enough, every
    epoch is monitored; with short ones, every second, third, ... epoch. ``share=None``
    allows everything (the callbacks' default without a budget).

    Example:

    >>> budget = MonitoringBudget(0.05)
    >>> budget.begin()
    >>> budget.allow("histograms")  # nothing measured yet
    True
    >>> budget.charge("histograms", 1.0)  # one second of work...
    >>> budget.allow("histograms")  # ...is far more than 5% of the training so far
    False
    >>> budget.skipped["histograms"]
    1
    >>> budget.end()

    Args:
        share: the largest share of the training time the monitoring may take (a float in
            ``(0, 1]``), or ``None`` for no limit.
    """

    def __init__(self, share: float | None = 0.05):
        if share is not None and (isinstance(share, bool) or not 0 < float(share) <= 1):
            raise ValueError(
                "Invalid value for argument `share`. Expected a float in (0, 1] or None. "
                f"Received: share={share!r}"
            )
        self.share = None if share is None else float(share)
        self._lock = threading.Lock()
        self._users = 0
        self._reset()

    def _reset(self) -> None:
        self._start = time.perf_counter()
        self.spent = 0.0  # seconds of monitoring work, all threads
        self._cycle: dict[str, float] = {}  # owner -> cost since its last granted epoch
        self._estimate: dict[str, float] = {}  # owner -> cost of its last granted epoch
        self._items: dict[str, list[float]] = {}  # owner -> costs of its finished work items
        self._reserved: dict[str, float] = {}  # owner -> seconds of work it must still do
        self.granted: dict[str, int] = {}
        self.once_costs: dict[str, float] = {}  # owner -> seconds of its one-time work
        self.skipped: dict[str, int] = {}

    def begin(self) -> None:
        """Starts the clock (``on_train_begin``); of several callers, the first counts."""
        with self._lock:
            if self._users == 0:
                self._reset()
            self._users += 1

    def end(self) -> None:
        """Stops using it (``on_train_end``); the next :meth:`begin` starts afresh."""
        with self._lock:
            self._users = max(self._users - 1, 0)

    @property
    def training_seconds(self) -> float:
        """Seconds since :meth:`begin`, less the monitoring work measured so far."""
        return max(time.perf_counter() - self._start - self.spent, 0.0)

    def allow(self, owner: str, *, prior: float | None = None, force: bool = False,
              once: float = 0.0) -> bool:
        """Whether `owner` may do its work now (counted in :attr:`granted` / :attr:`skipped`).

        Args:
            owner: who asks (one name per callback).
            prior: the expected seconds of `owner`'s work while none has been measured
                (for example from the bytes it will write); ``None``: 0, the first work
                item is allowed whatever it costs.
            force: grant it whatever the budget (work that must be done, such as the last
                checkpoint of a ``fit``); it is counted and measured as any other.
            once: expected seconds of one-time work this item adds to its usual cost (a
                compilation, charged with ``charge(..., once=True)``).
        """
        with self._lock:
            if self.share is None or force:
                ok = True
                self._reserved.pop(owner, None)  # the reserved work is being done
            else:
                reserved = sum(self._reserved.values())
                ok = (self.spent + reserved + self._expected(owner, prior) + float(once)
                      <= self.share * self.training_seconds)
            if ok:
                if owner in self._cycle:
                    self._estimate[owner] = self._cycle[owner]
                    self._items.setdefault(owner, []).append(self._cycle[owner])
                self._cycle[owner] = 0.0
                self.granted[owner] = self.granted.get(owner, 0) + 1
            else:
                self.skipped[owner] = self.skipped.get(owner, 0) + 1
            return ok

    def _expected(self, owner: str, prior: float | None) -> float:
        if owner not in self._cycle:  # nothing measured yet
            return float(prior or 0.0)
        return self._cycle[owner] or self._estimate.get(owner, 0.0)

    def expected(self, owner: str, prior: float | None = None) -> float:
        """The expected seconds of `owner`'s next work item: its last measured cost, or `prior`."""
        with self._lock:
            return self._expected(owner, prior)

    def reserve(self, owner: str, seconds: float) -> None:
        """Sets aside `seconds` for work `owner` must still do (granted later with ``force``).

        The other work is allowed only within the share left after the reservations, so
        that the forced work (the last checkpoint of a ``fit``) keeps the total within it.
        """
        with self._lock:
            self._reserved[owner] = max(float(seconds), 0.0)

    @property
    def work_costs(self) -> dict[str, list[float]]:
        """Seconds of each granted work item of each owner, in order, all threads counted.

        The last item of an owner keeps growing while its background part (a file write)
        runs; read it after ``fit`` has returned for the whole cost.
        """
        with self._lock:
            return {owner: [*self._items.get(owner, []), cycle]
                    for owner, cycle in self._cycle.items()}

    def charge(self, owner: str, seconds: float, *, once: bool = False) -> None:
        """Records `seconds` of `owner`'s work (callable from any thread).

        ``once=True``: one-time work (a compilation): it counts in :attr:`spent` and
        :attr:`once_costs`, not in the expected cost of `owner`'s next items.
        """
        with self._lock:
            self.spent += float(seconds)
            if once:
                self.once_costs[owner] = self.once_costs.get(owner, 0.0) + float(seconds)
                return
            self._cycle[owner] = self._cycle.get(owner, 0.0) + float(seconds)

    def timed(self, owner: str, job: Callable[[], Any]) -> Callable[[], Any]:
        """`job` wrapped to charge its thread's CPU time to `owner` (for background threads)."""

        def run():
            start = time.thread_time()
            try:
                return job()
            finally:
                self.charge(owner, time.thread_time() - start)

        return run
