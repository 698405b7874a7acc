"""Password guessing: checks off the event loop, failures throttled per address and login."""

from __future__ import annotations

import asyncio
import dataclasses
import threading

import pytest

from callpop.server.login_gate import LOGIN_GATE, Busy, LoginGate
from callpop.settings import Settings, WebSettings
from callpop.store.db import Database
from tests.support.live import PASSWORD, Recorder, StartLive, add_employee


def _web(settings: Settings, **kw: object) -> Settings:
    return settings.replace(web=dataclasses.replace(settings.web, **kw))


async def _try(c: object, login: str, password: str) -> tuple[int, str | None]:
    token = (await c.get("/login")).headers["X-CSRF-Token"]  # type: ignore[attr-defined]
    resp = await c.post("/login", data={"login": login, "password": password,  # type: ignore[attr-defined]
                                        "csrf_token": token}, allow_redirects=False)
    return resp.status, resp.headers.get("Retry-After")


async def test_wrong_passwords_for_one_login_then_even_the_right_one_waits(
        settings: Settings, db: Database, start_live: StartLive) -> None:
    live = await start_live(_web(settings, login_failures_per_login=5, login_window=120.0), store=Recorder().hooks())
    try:
        await add_employee(db, "anna", ["101"])
        await add_employee(db, "boris", ["102"])
        c = await live.client()
        answers = [await _try(c, "anna", f"guess-{i}") for i in range(5)]
        assert answers == [(401, None)] * 5
        gate = live.app[LOGIN_GATE]
        checks = gate.checks
        status, retry = await _try(c, "ANNA", PASSWORD)  # the right password, another spelling
        assert status == 429 and retry is not None and 0 < int(retry) <= 120
        assert gate.checks == checks  # refused before any argon2 work
        assert (await _try(c, "boris", PASSWORD))[0] == 302  # a colleague logs in as usual
    finally:
        await live.close()


async def test_many_logins_from_one_address_are_throttled(settings: Settings, db: Database,
                                                          start_live: StartLive) -> None:
    live = await start_live(_web(settings, login_failures_per_ip=4), store=Recorder().hooks())
    try:
        await add_employee(db, "anna", ["101"])
        for _ in range(6):  # an office behind one address logs in all morning: never throttled
            assert (await _try(await live.client(), "anna", PASSWORD))[0] == 302
        c = await live.client()
        assert [(await _try(c, f"user{i}", "pw"))[0] for i in range(4)] == [401] * 4
        status, retry = await _try(c, "anna", PASSWORD)
        assert status == 429 and int(retry or 0) > 0
    finally:
        await live.close()


def test_the_window_slides_and_a_success_clears_the_login() -> None:
    now = [0.0]
    gate = LoginGate(WebSettings(login_failures_per_ip=0, login_failures_per_login=3, login_window=60.0),
                     lambda _h, _p: False, clock=lambda: now[0])
    try:
        for t in (0.0, 10.0, 20.0):
            now[0] = t
            gate.attempt("10.0.0.1", "anna")
        now[0] = 30.0
        assert gate.retry_after("10.0.0.1", "anna") == 30  # the failure at 0 leaves at 60
        now[0] = 60.0
        assert gate.retry_after("10.0.0.1", "anna") == 0
        mark = gate.attempt("10.0.0.1", "anna")
        assert gate.retry_after("10.0.0.1", "anna") == 10  # counted while the check runs
        gate.succeeded("10.0.0.1", "anna", mark)
        assert gate.retry_after("10.0.0.1", "anna") == 0
    finally:
        gate.close()


async def test_a_password_check_never_stops_the_event_loop() -> None:
    release = threading.Event()

    def slow_check(_hash: str, password: str) -> bool:
        release.wait(5)  # argon2 standing in: CPU on a worker thread
        return password == "right"

    gate = LoginGate(WebSettings(password_checks=1, password_queue=1), slow_check)
    ticks = 0

    async def other_work() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            if ticks == 50:
                release.set()  # the loop kept running while the check was under way
            await asyncio.sleep(0)

    worker = asyncio.create_task(other_work())
    try:
        first = asyncio.create_task(gate.verify("h", "right"))
        second = asyncio.create_task(gate.verify("h", "wrong"))
        await asyncio.sleep(0)
        with pytest.raises(Busy):  # one running, one waiting: a third is refused at once
            await gate.verify("h", "third")
        assert await first is True and await second is False
        assert ticks >= 50
    finally:
        worker.cancel()
        gate.close()
    assert gate.stats()["logins_busy"] == 1


async def test_a_saturated_gate_answers_503_with_retry_after(settings: Settings, db: Database,
                                                             start_live: StartLive) -> None:
    live = await start_live(settings, store=Recorder().hooks())
    try:
        await add_employee(db, "anna", ["101"])
        gate = live.app[LOGIN_GATE]
        gate._max_in_flight = 0  # every check slot taken
        c = await live.client()
        assert await _try(c, "anna", PASSWORD) == (503, "1")
    finally:
        await live.close()
