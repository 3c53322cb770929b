"""Fairness between keys in one process: each key runs at most ENGINE_KEY_SLOTS units of
engine work at once (a dashboard refresh, an explorer page, a CSV export, a data API
page: one `server.lake.source.open_rows` each), and at most ENGINE_KEY_QUEUE more of its
requests wait for a turn; past that, EngineBusy at once (the dashboard says so in the
page, the API answers 429 with Retry-After).

Why a cap per key and no global queue: the engine shares the process's cores among the
queries running, so with one unit per key, a key with six all-time refreshes in flight
has one of them running and another key's refresh shares the cores with that one only,
instead of with six (bench/fairness.py measures it). The waiting requests hold their web
threads, which is why the queue is bounded: a key can hold 1 + ENGINE_KEY_QUEUE of them,
and `make run` starts more threads than that (server.runtime.run).

A thread already holding a turn for a key (work nested in a unit) goes on without
waiting for another.

A unit that waited behind its own key's work while another key is at the engine too runs
narrow (server.lake.engine: a database of one thread), so the key keeping the engine busy
takes one core and the other key's query the rest.
"""

from __future__ import annotations

import contextlib
import threading


class EngineBusy(RuntimeError):
    """The key has as much engine work running and waiting as it may; try again soon."""

    retry_after = 2

    def __init__(self, slots: int, queue: int) -> None:
        super().__init__(
            f"This key already has {slots} quer{'y' if slots == 1 else 'ies'} running and "
            f"{queue} waiting on this server (ENGINE_KEY_SLOTS, ENGINE_KEY_QUEUE): try again "
            "in a moment."
        )


class FairGate:
    """Turns per key: at most `slots` running and `queue` waiting for each."""

    def __init__(self, slots: int, queue: int) -> None:
        self.slots, self.queue = slots, queue
        self._cond = threading.Condition()
        self._running: dict[int, int] = {}
        self._waiting: dict[int, int] = {}
        self._held = threading.local()

    @contextlib.contextmanager
    def turn(self, key_id: int):
        """One unit of the key's engine work; yields whether it should run narrow: it
        waited behind the key's own work and another key is at the engine too."""
        held = self._held.__dict__.setdefault("keys", {})
        if key_id in held:  # work nested in a unit of this thread: part of that unit
            yield held[key_id]
            return
        narrow = self._acquire(key_id)
        held[key_id] = narrow
        try:
            yield narrow
        finally:
            held.pop(key_id, None)
            with self._cond:
                left = self._running[key_id] - 1
                if left:
                    self._running[key_id] = left
                else:
                    del self._running[key_id]
                self._cond.notify_all()

    def _acquire(self, key_id: int) -> bool:
        waited = False
        with self._cond:
            if self._running.get(key_id, 0) >= self.slots:
                waited = True
                if self._waiting.get(key_id, 0) >= self.queue:
                    raise EngineBusy(self.slots, self.queue)
                self._waiting[key_id] = self._waiting.get(key_id, 0) + 1
                try:
                    while self._running.get(key_id, 0) >= self.slots:
                        self._cond.wait()
                finally:
                    self._waiting[key_id] -= 1
                    if not self._waiting[key_id]:
                        del self._waiting[key_id]
            self._running[key_id] = self._running.get(key_id, 0) + 1
            others = (set(self._running) | set(self._waiting)) - {key_id}
            return waited and bool(others)

    def load(self) -> dict[int, tuple[int, int]]:
        """{key id: (running, waiting)} now (tests, the benchmark)."""
        with self._cond:
            keys = set(self._running) | set(self._waiting)
            return {k: (self._running.get(k, 0), self._waiting.get(k, 0)) for k in keys}


_gates: dict[tuple[int, int], FairGate] = {}
_lock = threading.Lock()


def gate(settings) -> FairGate:
    """This process's gate for these settings."""
    shape = (settings.ENGINE_KEY_SLOTS, settings.ENGINE_KEY_QUEUE)
    with _lock:
        if shape not in _gates:
            _gates[shape] = FairGate(*shape)
        return _gates[shape]
