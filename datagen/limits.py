"""Throughput limits for API teachers: requests-per-minute and tokens-per-minute buckets, and backoff.

    limiter = RateLimiter(rpm=500, tpm=200_000)
    await limiter.acquire(tokens=1200)      # waits until both buckets allow the call
    delay = backoff_delay(attempt=2, retry_after=None)
"""
from __future__ import annotations

import asyncio
import random
import time


class TokenBucket:
    """`per_minute` units, refilled continuously; acquire(n) waits until n units are available."""

    def __init__(self, per_minute: float | None):
        self.capacity = per_minute
        self.level = per_minute or 0.0
        self.updated = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        if self.capacity:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.capacity / 60.0)
        self.updated = now

    def wait_time(self, n: float) -> float:
        if not self.capacity:
            return 0.0
        self._refill()
        n = min(n, self.capacity)  # a single request larger than the bucket still goes, at a full bucket
        return 0.0 if self.level >= n else (n - self.level) * 60.0 / self.capacity

    def take(self, n: float) -> None:
        if self.capacity:
            self.level -= min(n, self.capacity)


class RateLimiter:
    def __init__(self, rpm: float | None = None, tpm: float | None = None):
        self.requests, self.tokens = TokenBucket(rpm), TokenBucket(tpm)
        self._lock = asyncio.Lock()

    async def acquire(self, tokens: int = 0) -> None:
        async with self._lock:  # first come, first served
            while True:
                wait = max(self.requests.wait_time(1), self.tokens.wait_time(tokens))
                if wait <= 0:
                    self.requests.take(1)
                    self.tokens.take(tokens)
                    return
                await asyncio.sleep(wait)


def backoff_delay(attempt: int, retry_after: float | None = None, *, base: float = 1.0, cap: float = 60.0) -> float:
    """Seconds to wait before retry `attempt` (1, 2, ...): exponential backoff, base * 2**(attempt-1) capped at
    `cap`, with jitter that keeps half to all of it (so parallel calls do not retry in lockstep). A server's
    Retry-After wins when it asks for longer; a shorter one is not a reason to retry sooner than the backoff.
    Never more than `cap`."""
    expo = min(cap, base * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
    if retry_after is not None:
        return min(cap, max(retry_after, expo))
    return expo
