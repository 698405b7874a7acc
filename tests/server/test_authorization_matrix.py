"""The authorization matrix: every route of the router and every websocket action, sent as
anonymous, manager A, manager B, a supervisor and an admin, with the answer each must get.

The routes are read from the running application's router, not from this file: a route
added without a row here fails ``test_every_route_has_a_row`` (and a row whose route is
gone fails it too), so nobody can add a URL without deciding who may use it. Each request
runs against records made fresh for it (a client of manager A with a number, an agreement,
a promise and a note of A's, a payment and a receivable), so a DELETE or a logout in one
cell cannot change the answer of another. Manager A is the client's responsible manager
and the author of its records; manager B is a colleague.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from callpop.server.ws import ACTIONS
from callpop.settings import Settings
from callpop.store.db import Database
from callpop.store.models import Agreement, Call, Client, ClientPhone, Note, Payment, Promise, Receivable
from tests.support.live import HttpClient, Live, Recorder, StartLive, add_employee

WHO = ("anonymous", "manager_a", "manager_b", "supervisor", "admin")
_numbers = itertools.count(1000)


@dataclass(frozen=True)
class Case:
    """One route: the URL to send (ids filled in), the body, and the status per identity
    in the order of ``WHO``."""

    url: str
    statuses: tuple[int, int, int, int, int]
    json: Any = None
    form: Mapping[str, str] | None = None
    ends_session: bool = False  # logs the sender out: done with a session of its own
    websocket: bool = False

    def expected(self) -> dict[str, int]:
        return dict(zip(WHO, self.statuses, strict=True))


def everyone(status: int) -> tuple[int, int, int, int, int]:
    return (status,) * 5


LOGGED_IN = (302, 200, 200, 200, 200)       # a page: the login form for anonymous
API = (401, 200, 200, 200, 200)             # the API: 401 for anonymous
CREATED = (401, 201, 201, 201, 201)
OWNERS = (401, 200, 403, 200, 200)          # A's record: B may not change it
SUPERVISORS_PAGE = (302, 403, 403, 200, 200)
SUPERVISORS_API = (401, 403, 403, 200, 200)
MONEY_WRITE = (401, 403, 403, 201, 201)
MONEY_CHANGE = (401, 403, 403, 200, 200)

MATRIX: dict[tuple[str, str], Case] = {
    # pages, forms and the socket
    ("GET", "/"): Case("/", LOGGED_IN),
    ("GET", "/login"): Case("/login", (200, 302, 302, 302, 302)),
    ("POST", "/login"): Case("/login", everyone(401), form={"login": "nobody", "password": "wrong"}),
    ("POST", "/logout"): Case("/logout", everyone(302), form={}, ends_session=True),
    ("POST", "/logout/everywhere"): Case("/logout/everywhere", everyone(302), form={}, ends_session=True),
    ("GET", "/health"): Case("/health", everyone(200)),
    # machine endpoints: no session, their own address allow-list ([metrics], [dialplan]; loopback by default)
    ("GET", "/metrics"): Case("/metrics", everyone(200)),
    ("GET", "/pbx/caller-name"): Case("/pbx/caller-name?number=%2B79161234567", everyone(200)),
    ("GET", "/pbx/route"): Case("/pbx/route?number=%2B79161234567", everyone(200)),
    ("GET", "/ws"): Case("/ws", (401, 101, 101, 101, 101), websocket=True),
    ("GET", "/clients/{id}"): Case("/clients/{client}", LOGGED_IN),
    ("GET", "/promises"): Case("/promises", LOGGED_IN),
    ("POST", "/settings/language"): Case("/settings/language", everyone(303), form={"language": "en", "next": "/"}),
    ("GET", "/earnings"): Case("/earnings", LOGGED_IN),
    ("GET", "/dashboard"): Case("/dashboard", SUPERVISORS_PAGE),
    ("GET", "/dashboard/drill"): Case("/dashboard/drill?employee={anna}&kpi=contacts", (302, 200, 403, 200, 200)),
    ("POST", "/dashboard/plans"): Case("/dashboard/plans", (302, 403, 403, 303, 303),
                                       form={"month": "2026-03", "plan-{anna}-contacts": "5"}),
    ("GET", "/dashboard.csv"): Case("/dashboard.csv", SUPERVISORS_PAGE),
    ("GET", "/static"): Case("/static/desk.js", everyone(200)),
    # the API
    ("GET", "/api/openapi.json"): Case("/api/openapi.json", everyone(200)),
    ("GET", "/api/me"): Case("/api/me", API),
    ("PATCH", "/api/me"): Case("/api/me", API, json={"language": "en"}),
    ("GET", "/api/promises/due"): Case("/api/promises/due", API),
    ("GET", "/api/clients/{id}/card"): Case("/api/clients/{client}/card", API),
    ("GET", "/api/lookup"): Case("/api/lookup?number=%2B79161234567", API),
    ("GET", "/api/clients/{id}/history"): Case("/api/clients/{client}/history?section=notes", API),
    # A and B have extensions, the PBX is not connected here (503); no extension: 409
    ("POST", "/api/originate"): Case("/api/originate", (401, 503, 503, 409, 409),
                                     json={"client_phone": "+79161234567"}),
    ("GET", "/api/callbacks"): Case("/api/callbacks", API),
    ("POST", "/api/callbacks/{call_id}/done"): Case("/api/callbacks/{call}/done", (401, 204, 204, 204, 204), json={}),
    ("GET", "/api/clients"): Case("/api/clients", API),
    ("POST", "/api/clients"): Case("/api/clients", CREATED, json={"name": "Новый клиент"}),
    ("GET", "/api/clients/{id}"): Case("/api/clients/{client}", API),
    ("PATCH", "/api/clients/{id}"): Case("/api/clients/{client}", OWNERS, json={"name": "ООО Переименованное"}),
    ("POST", "/api/clients/{id}/phones"): Case("/api/clients/{client}/phones", CREATED,
                                               json={"number": "+7903555{n:04d}"}),
    ("GET", "/api/phones"): Case("/api/phones", API),
    ("GET", "/api/phones/{id}"): Case("/api/phones/{phone}", API),
    ("PATCH", "/api/phones/{id}"): Case("/api/phones/{phone}", OWNERS, json={"label": "мобильный"}),
    ("DELETE", "/api/phones/{id}"): Case("/api/phones/{phone}", (401, 204, 403, 204, 204)),
    ("GET", "/api/agreements"): Case("/api/agreements", API),
    ("POST", "/api/agreements"): Case("/api/agreements", CREATED, json={"client_id": "{client}", "title": "Сделка"}),
    ("GET", "/api/agreements/{id}"): Case("/api/agreements/{agreement}", API),
    ("PATCH", "/api/agreements/{id}"): Case("/api/agreements/{agreement}", OWNERS, json={"status": "won"}),
    ("GET", "/api/promises"): Case("/api/promises", API),
    ("POST", "/api/promises"): Case("/api/promises", CREATED, json={"client_id": "{client}", "text": "Перезвонить"}),
    ("GET", "/api/promises/{id}"): Case("/api/promises/{promise}", API),
    ("PATCH", "/api/promises/{id}"): Case("/api/promises/{promise}", OWNERS, json={"text": "Не звонить"}),
    ("GET", "/api/notes"): Case("/api/notes", API),
    ("POST", "/api/notes"): Case("/api/notes", CREATED, json={"client_id": "{client}", "text": "Заметка"}),
    ("GET", "/api/notes/{id}"): Case("/api/notes/{note}", API),
    ("PATCH", "/api/notes/{id}"): Case("/api/notes/{note}", OWNERS, json={"text": "Другая заметка"}),
    ("GET", "/api/payments"): Case("/api/payments", API),
    ("POST", "/api/payments"): Case("/api/payments", MONEY_WRITE,
                                    json={"client_id": "{client}", "amount": 99_999_999, "paid_at": "2026-03-01"}),
    ("GET", "/api/payments/{id}"): Case("/api/payments/{payment}", API),
    ("PATCH", "/api/payments/{id}"): Case("/api/payments/{payment}", MONEY_CHANGE, json={"amount": "0.01"}),
    ("GET", "/api/receivables"): Case("/api/receivables", API),
    ("POST", "/api/receivables"): Case("/api/receivables", MONEY_WRITE,
                                       json={"client_id": "{client}", "amount": 5, "issued_at": "2026-03-01"}),
    ("GET", "/api/receivables/{id}"): Case("/api/receivables/{receivable}", API),
    ("PATCH", "/api/receivables/{id}"): Case("/api/receivables/{receivable}", MONEY_CHANGE,
                                             json={"settled_at": "2026-03-02"}),
    ("GET", "/api/kpi/me"): Case("/api/kpi/me", API),
    ("GET", "/api/kpi/employee/{id}"): Case("/api/kpi/employee/{anna}", OWNERS),
    ("GET", "/api/kpi/dashboard"): Case("/api/kpi/dashboard", SUPERVISORS_API),
    ("GET", "/api/plans"): Case("/api/plans", SUPERVISORS_API),
    ("PUT", "/api/plans"): Case("/api/plans", SUPERVISORS_API, json={"month": "2026-03", "plans": []}),
    ("GET", "/api/audit"): Case("/api/audit", SUPERVISORS_API),
}

# Every message a tab may send: the reply's type per identity (anonymous has no socket).
WS_MATRIX: dict[str, dict[str, str]] = {
    "ping": {"manager_a": "pong", "manager_b": "pong", "supervisor": "pong", "admin": "pong"},
    "subscribe_all": {"manager_a": "error", "manager_b": "error", "supervisor": "subscribed", "admin": "subscribed"},
    "subscribe_own": {"manager_a": "subscribed", "manager_b": "subscribed", "supervisor": "subscribed",
                      "admin": "subscribed"},
}

ACCOUNTS = {"manager_a": ("anna", "manager", ["101"]), "manager_b": ("boris", "manager", ["102"]),
            "supervisor": ("sue", "supervisor", []), "admin": ("adam", "admin", [])}


def router_keys(app: web.Application) -> set[tuple[str, str]]:
    """(method, path) of every route the router serves; HEAD comes with GET."""
    keys = set()
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        canonical = route.resource.canonical if route.resource is not None else ""
        keys.add((route.method, canonical))
    return keys


@dataclass
class Sender:
    """One identity's HTTP client and the CSRF token of its session."""

    http: HttpClient
    csrf: str
    sessions: list[HttpClient] = field(default_factory=list)


async def _sender(live: Live, who: str) -> Sender:
    if who == "anonymous":
        http = await live.client()
        token = (await http.get("/login")).headers["X-CSRF-Token"]
        return Sender(http, token)
    http = await live.login(ACCOUNTS[who][0])
    token = (await (await http.get("/api/me")).json())["csrf_token"]
    return Sender(http, token)


async def _fresh(db: Database, anna: int) -> dict[str, int]:
    """A client of manager A with a number and A's records, and money on it."""
    now = dt.datetime.now(dt.UTC)
    async with db.sessions() as s:
        client = Client(name="Клиент Анны", responsible_id=anna, status="new")
        s.add(client)
        await s.flush()
        rows: dict[str, Any] = {
            "phone": ClientPhone(client_id=client.id, raw=f"+7916{next(_numbers):07d}"),
            "agreement": Agreement(client_id=client.id, title="Поставка", made_by_id=anna),
            "promise": Promise(client_id=client.id, text="Выслать счёт", made_by_id=anna, due_at=now),
            "note": Note(client_id=client.id, text="Любит чай", author_id=anna),
            "payment": Payment(client_id=client.id, amount=Decimal(1000), paid_at=now),
            "receivable": Receivable(client_id=client.id, amount=Decimal(500), issued_at=now),
            "call": Call(pbx_id="main", call_key=f"matrix-{next(_numbers)}", direction="inbound",
                         client_number="+79161234567", client_id=client.id, started_at=now, outcome="missed"),
        }
        s.add_all(rows.values())
        await s.commit()
        return {"client": client.id, "anna": anna, **{name: row.id for name, row in rows.items()}}


def _fill(value: Any, ids: Mapping[str, int]) -> Any:
    if isinstance(value, str):
        text = value.replace("{n:04d}", f"{next(_numbers) % 10_000:04d}").format(**ids)
        return int(text) if value.startswith("{") and value.endswith("}") else text
    if isinstance(value, dict):
        return {_fill(k, ids): _fill(v, ids) for k, v in value.items()}
    return value


async def _send(sender: Sender, method: str, case: Case, ids: Mapping[str, int]) -> int:
    url = _fill(case.url, ids)
    if case.websocket:
        try:
            ws = await sender.http.ws_connect(url)
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status
        await ws.close()
        return 101
    headers = {"X-CSRF-Token": sender.csrf}
    kwargs: dict[str, Any] = {"allow_redirects": False, "headers": headers}
    if case.form is not None:
        kwargs["data"] = {**_fill(dict(case.form), ids), "csrf_token": sender.csrf}
    elif case.json is not None:
        kwargs["json"] = _fill(case.json, ids)
    async with sender.http.request(method, url, **kwargs) as resp:
        await resp.read()
        return resp.status


@pytest.fixture
async def site(start_live: StartLive, settings: Settings, db: Database) -> tuple[Live, dict[str, int]]:
    ids = {who: await add_employee(db, login, ext, role=role) for who, (login, role, ext) in ACCOUNTS.items()}
    live = await start_live(settings, store=Recorder().hooks(), real_templates=True)
    return live, ids


def test_every_route_has_a_row(site: tuple[Live, dict[str, int]]) -> None:
    live, _ids = site
    served = router_keys(live.app)
    assert sorted(served - set(MATRIX)) == [], "routes without a row in MATRIX: decide who may use them"
    assert sorted(set(MATRIX) - served) == [], "rows in MATRIX for routes the router does not serve"


def test_every_websocket_action_has_a_row() -> None:
    assert sorted(ACTIONS) == sorted(WS_MATRIX)


async def test_every_route_answers_every_identity_as_expected(site: tuple[Live, dict[str, int]], db: Database
                                                              ) -> None:
    live, ids = site
    senders = {who: await _sender(live, who) for who in WHO}
    got: dict[tuple[str, str], dict[str, int]] = {}
    for (method, path), case in sorted(MATRIX.items(), key=lambda kv: kv[1].ends_session):
        answers: dict[str, int] = {}
        for who in WHO:
            sender = await _sender(live, who) if case.ends_session else senders[who]
            answers[who] = await _send(sender, method, case, await _fresh(db, ids["manager_a"]))
        got[(method, path)] = answers
    wrong = {key: (answers, MATRIX[key].expected()) for key, answers in got.items()
             if answers != MATRIX[key].expected()}
    assert wrong == {}, "(got, expected) per route"


async def test_every_websocket_action_answers_every_identity_as_expected(site: tuple[Live, dict[str, int]]
                                                                         ) -> None:
    live, _ids = site
    anonymous = await _sender(live, "anonymous")
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await anonymous.http.ws_connect("/ws")
    assert refused.value.status == 401
    got: dict[str, dict[str, str]] = {action: {} for action in ACTIONS}
    for who in WHO[1:]:
        sender = await _sender(live, who)
        ws = await sender.http.ws_connect("/ws")
        assert [(await ws.receive_json())["type"] for _ in range(2)] == ["hello", "snapshot"]
        for action in ACTIONS:
            await ws.send_json({"type": action})
            reply = await ws.receive_json(timeout=5)
            got[action][who] = reply["type"]
            if reply["type"] == "subscribed":
                assert (await ws.receive_json(timeout=5))["type"] == "snapshot"
        await ws.close()
    assert got == WS_MATRIX
