"""Every answer carries the security headers: pages, API, static files, errors, redirects."""

from __future__ import annotations

import dataclasses

from callpop.server.headers import CONTENT_SECURITY_POLICY
from callpop.settings import Settings
from callpop.store.db import Database
from tests.support.live import Recorder, StartLive, add_employee

EXPECTED = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


async def test_every_kind_of_response_carries_the_headers(settings: Settings, db: Database,
                                                          start_live: StartLive) -> None:
    live = await start_live(settings, store=Recorder().hooks(), real_templates=True)
    try:
        await add_employee(db, "anna", ["101"])
        anon = await live.client()
        anna = await live.login("anna")
        answers = {
            "login page": await anon.get("/login"),
            "redirect to login": await anon.get("/", allow_redirects=False),
            "desk": await anna.get("/"),
            "api json": await anna.get("/api/me"),
            "api 401": await anon.get("/api/me"),
            "csrf 403": await anna.post("/api/originate", json={}),
            "404 page": await anna.get("/no/such/page", headers={"Accept": "text/html"}),
            "static": await anna.get("/static/desk.js"),
            "ws refused": await anon.get("/ws"),
            "health": await anon.get("/health"),
        }
        for what, resp in answers.items():
            for name, value in EXPECTED.items():
                assert resp.headers.get(name) == value, (what, resp.status, name)
            assert "Strict-Transport-Security" not in resp.headers  # plain HTTP: no HSTS
        assert answers["csrf 403"].status == 403 and answers["404 page"].status == 404
        assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY and "unsafe-inline" not in CONTENT_SECURITY_POLICY
    finally:
        await live.close()


async def test_hsts_when_served_over_https(settings: Settings, db: Database, start_live: StartLive) -> None:
    secure = settings.replace(web=dataclasses.replace(settings.web, cookie_secure=True))
    live = await start_live(secure, store=Recorder().hooks())
    try:
        resp = await (await live.client()).get("/login")
        assert resp.headers["Strict-Transport-Security"] == "max-age=31536000"
    finally:
        await live.close()
