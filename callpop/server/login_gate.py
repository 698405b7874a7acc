"""The login form's guard: password checks off the event loop, and attempts throttled.

argon2 is slow on purpose (~0.1 s of CPU a check). Run on the event loop, every wrong
password froze the pops, the sockets and the AMI reader for that long; a script posting
passwords could stall the daemon outright. Here a check runs in a worker thread, at most
``password_checks`` at once; when ``password_queue`` more are already waiting the request
is answered 503 at once instead of piling up. The threads run at the lowest CPU priority,
so on a busy machine the pops get the cores first.

Attempts are counted per client address and per login over ``login_window`` seconds
from the moment they start (a flood is throttled while its checks are still running, not
after); a successful one is taken back. Past ``login_failures_per_ip`` /
``login_failures_per_login`` failures the form answers 429 with ``Retry-After`` without
checking anything, until the oldest leaves the window. A successful login also clears
its login's count (not the address's: one right password must not reopen a guessing run
from that address). Behind a reverse proxy every
client has the proxy's address: keep the per-address limit high there.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from callpop.settings import WebSettings

__all__ = ["LOGIN_GATE", "Busy", "LoginGate"]

_MAX_KEYS = 100_000  # addresses and logins remembered; beyond, the oldest are forgotten

Checker = Callable[[str, str], bool]


class Busy(RuntimeError):
    """Too many password checks are waiting already."""


class _Window:
    """Failure times per key within a sliding window; memory bounded by limit x keys."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._times: dict[str, deque[float]] = {}

    def retry_after(self, key: str, now: float) -> float:
        """Seconds until *key* may try again (0: now)."""
        times = self._times.get(key)
        if not self.limit or times is None:
            return 0.0
        while times and now - times[0] >= self.window:
            times.popleft()
        if not times:
            del self._times[key]
            return 0.0
        return self.window - (now - times[0]) if len(times) >= self.limit else 0.0

    def add(self, key: str, now: float) -> None:
        if not self.limit:
            return
        times = self._times.get(key)
        if times is None:
            if len(self._times) >= _MAX_KEYS:
                self._times.pop(next(iter(self._times)))
            times = self._times[key] = deque(maxlen=self.limit)
        times.append(now)

    def clear(self, key: str) -> None:
        self._times.pop(key, None)

    def take_back(self, key: str, at: float) -> None:
        times = self._times.get(key)
        if times is not None and at in times:
            times.remove(at)


def _yield_to_the_loop() -> None:
    """Run password checks at the lowest CPU priority (Linux: per thread, and argon2's own
    lane threads inherit it): with two cores and four argon2 lanes per check, the event
    loop's thread would otherwise wait for a core behind them."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


class LoginGate:
    """One per application; see the module docstring. :meth:`close` at shutdown."""

    def __init__(self, settings: WebSettings, checker: Checker, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._check = checker
        self._clock = clock
        self._per_ip = _Window(settings.login_failures_per_ip, settings.login_window)
        self._per_login = _Window(settings.login_failures_per_login, settings.login_window)
        workers = max(1, settings.password_checks)
        # Its own threads: password checks never wait behind (or hold up) database reads
        # in the loop's default executor.
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="password-check",
                                        initializer=_yield_to_the_loop)
        self._max_in_flight = workers + settings.password_queue
        self._in_flight = 0
        self.checks = 0
        self.refused = 0
        self.busy = 0

    def retry_after(self, address: str, login: str) -> int:
        """Whole seconds to wait before this address or login may try again (0: go ahead)."""
        now = self._clock()
        wait = max(self._per_ip.retry_after(address, now), self._per_login.retry_after(login.casefold(), now))
        if wait:
            self.refused += 1
        return math.ceil(wait)

    def attempt(self, address: str, login: str) -> float:
        """Count an attempt as failed from its start; returns the mark :meth:`succeeded` takes back."""
        now = self._clock()
        self._per_ip.add(address, now)
        if login:
            self._per_login.add(login.casefold(), now)
        return now

    def succeeded(self, address: str, login: str, mark: float) -> None:
        self._per_ip.take_back(address, mark)
        self._per_login.clear(login.casefold())

    async def verify(self, password_hash: str, password: str) -> bool:
        """The argon2 check on a worker thread; :class:`Busy` when ``password_checks`` run
        and ``password_queue`` more wait already. A request that goes away mid-check still
        holds its place until the thread is done, so the bound is real."""
        if self._in_flight >= self._max_in_flight:
            self.busy += 1
            raise Busy(f"{self._in_flight} password checks running or waiting")
        loop = asyncio.get_running_loop()
        self._in_flight += 1
        self.checks += 1
        job = self._pool.submit(self._check, password_hash, password)
        job.add_done_callback(lambda _job: loop.call_soon_threadsafe(self._done))
        return await asyncio.wrap_future(job)

    def _done(self) -> None:
        self._in_flight -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def stats(self) -> dict[str, int]:
        return {"password_checks": self.checks, "logins_throttled": self.refused, "logins_busy": self.busy,
                "checks_in_flight": self._in_flight}


LOGIN_GATE: web.AppKey[LoginGate] = web.AppKey("login_gate", LoginGate)
