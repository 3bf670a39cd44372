"""The local stack's clock: real time, or a simulated clock that demos and tests advance.

Everything time-driven in the stack (capture timestamps, schedule firing, metric timestamps,
alarm evaluation) reads `now()` from one clock and is driven by `tick()` callbacks, so
advancing a simulated clock by three hours fires three hourly schedules and 180 alarm
evaluations, in order, deterministically.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

Tick = Callable[[datetime], None]
TICK = timedelta(minutes=1)  # CloudWatch evaluates alarms every minute; schedules fire on minutes


class Clock:
    """Base: holds the tick subscribers. Subclasses say what `now()` is."""

    simulated = False

    def __init__(self) -> None:
        self._subscribers: list[Tick] = []
        self._lock = threading.RLock()

    def subscribe(self, callback: Tick) -> None:
        self._subscribers.append(callback)

    def now(self) -> datetime:
        raise NotImplementedError

    def _fire(self, moment: datetime) -> None:
        for callback in list(self._subscribers):
            callback(moment)


class RealClock(Clock):
    """Wall-clock time; the stack's background thread calls `tick()` once a minute."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def tick(self) -> None:
        with self._lock:
            self._fire(self.now())


class SimulatedClock(Clock):
    simulated = True

    def __init__(self, start: datetime) -> None:
        super().__init__()
        if start.tzinfo is None:
            raise ValueError("simulated clock start must be timezone-aware (UTC)")
        self._now = start.astimezone(timezone.utc)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move forward minute by minute, firing every subscriber at each minute."""
        if delta < timedelta(0):
            raise ValueError(f"a clock cannot go backwards (advance by {delta})")
        with self._lock:
            target = self._now + delta
            while self._now + TICK <= target:
                self._now += TICK
                self._fire(self._now)
            self._now = target
            return self._now
