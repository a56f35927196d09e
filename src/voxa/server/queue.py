"""A bounded queue per model, so heavy requests never starve the rest of the server.

A transcription holds its model for seconds to minutes. Before, each one waiting for the model
held one of the server's shared worker threads, and past ~40 of them ``/health``, ``/metrics``,
speech and live streams stalled behind the queue. Now requests wait here, on the event loop,
holding no thread: one runs per model at a time (CTranslate2 already uses every core), at most
``max_queue`` wait behind it in order, and the next one is refused at once with 429 and a
``Retry-After`` estimated from how long recent requests took.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from contextlib import asynccontextmanager

from .errors import APIError


class ModelQueue:
    def __init__(self, name: str, max_waiting: int, on_change=None):
        self.name, self.max_waiting = name, max_waiting
        self.on_change = on_change  # callback(name, requests running or waiting), for /metrics
        self.busy = False
        self.waiting: deque[asyncio.Future] = deque()
        self.mean_s = 5.0  # moving average of a request's time on the model

    def retry_after(self) -> int:
        return max(1, math.ceil(self.mean_s * (len(self.waiting) + 1)))

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self.name, len(self.waiting) + self.busy)

    async def acquire(self) -> None:
        if not self.busy and not self.waiting:
            self.busy = True
            self._changed()
            return
        if len(self.waiting) >= self.max_waiting:
            raise APIError(429, f"the server is busy: {len(self.waiting)} requests are waiting for model "
                                f"{self.name}; try again in {self.retry_after()} s", "rate_limit_exceeded",
                           headers={"Retry-After": str(self.retry_after())})
        fut = asyncio.get_running_loop().create_future()
        self.waiting.append(fut)
        self._changed()
        try:
            await fut  # release() hands the model over: busy stays True
        except asyncio.CancelledError:  # the client left while waiting
            if fut.done() and not fut.cancelled():
                self.release()  # it was handed the model just now: pass it on
            else:
                self.waiting.remove(fut)
                self._changed()
            raise

    def release(self, took_s: float | None = None) -> None:
        if took_s is not None:
            self.mean_s = 0.8 * self.mean_s + 0.2 * took_s
        while self.waiting:
            fut = self.waiting.popleft()
            if not fut.done():
                fut.set_result(None)
                self._changed()
                return
        self.busy = False
        self._changed()


class ModelQueues:
    """The queues of one app, by model name."""

    def __init__(self, max_waiting: int, on_change=None):
        self.max_waiting, self.on_change = max_waiting, on_change
        self.queues: dict[str, ModelQueue] = {}

    def get(self, name: str) -> ModelQueue:
        if name not in self.queues:
            self.queues[name] = ModelQueue(name, self.max_waiting, self.on_change)
        return self.queues[name]

    @asynccontextmanager
    async def turn(self, name: str):
        """Wait for ``name``'s turn (429 when too many wait already); the body runs holding it."""
        q = self.get(name)
        await q.acquire()
        t0 = time.monotonic()
        try:
            yield
        finally:
            q.release(time.monotonic() - t0)

    def depth(self) -> dict[str, int]:
        return {n: len(q.waiting) + q.busy for n, q in self.queues.items()}
