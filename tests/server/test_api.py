"""The REST API over real HTTP, on both databases: login and CSRF enforced, bad input
answered with a 4xx that names the field, filters, promise closing, click-to-call."""

from __future__ import annotations

import dataclasses

import pytest

from callpop.settings import Settings
from callpop.store.db import Database
from tests.support.api import FakeAmi, add_employee, logged_in, serve


async def test_without_login_the_api_answers_401(db: Database, db_settings: Settings) -> None:
    async with serve(db_settings, db) as server, logged_in(server, None) as anon:
        for path in ("/api/me", "/api/clients", "/api/promises/due", "/api/promises?status=open"):
            status, body = await anon.call("GET", path)
            assert status == 401, path
            assert body == {"error": "login required", "field": None, "message": "Нужно войти в систему"}


async def test_writes_without_the_csrf_token_are_refused(db: Database, db_settings: Settings) -> None:
    anna = await add_employee(db, "anna")
    async with serve(db_settings, db) as server, logged_in(server, anna) as user:
        status, _ = await user.call("POST", "/api/clients", {"name": "Forged"}, csrf=False)
        assert status == 403
        status, _ = await user.call("POST", "/api/clients", {"name": "Forged"}, csrf=False,
                                    headers={"X-CSRF-Token": "guess"})
        assert status == 403
        status, page = await user.call("GET", "/api/clients")
    assert page["total"] == 0  # nothing was created


BAD_INPUT: list[tuple[str, object, str]] = [
    ("/api/clients", {"company": "No name"}, "name"),
    ("/api/clients", {"name": "A", "phones": [{"number": "abc"}]}, "phones[0].number"),
    ("/api/clients", {"name": "A" * 301}, "name"),
    ("/api/clients", [1, 2], "body"),
    ("/api/promises", {"client_id": "{client}", "text": "Call back", "due_at": "31.02.2026"}, "due_at"),
    ("/api/promises", {"client_id": "{client}", "text": "x" * 5000}, "text"),
    ("/api/payments", {"client_id": "{client}", "amount": -100, "paid_at": "2026-03-01"}, "amount"),
    ("/api/agreements", {"client_id": "{client}", "title": "Deal", "status": "pending"}, "status"),
    ("/api/notes", {"client_id": "{client}", "text": "hi", "author_id": 1}, "author_id"),
    ("/api/originate", {"client_phone": "12"}, "client_phone"),
]


async def test_bad_input_is_a_422_naming_the_field(db: Database, db_settings: Settings) -> None:
    anna = await add_employee(db, "anna", extensions=("101",))
    async with serve(db_settings, db, FakeAmi()) as server, logged_in(server, anna) as user:
        _, client = await user.call("POST", "/api/clients", {"name": "Клиент"})
        for path, body, field in BAD_INPUT:
            if isinstance(body, dict):
                body = {k: (client["id"] if v == "{client}" else v) for k, v in body.items()}
            status, answer = await user.call("POST", path, body)
            assert status == 422, (path, body, answer)
            assert answer["field"] == field, (path, body, answer)
            assert field in answer["error"]


async def test_not_json_and_unknown_ids_are_clear_errors(db: Database, db_settings: Settings) -> None:
    anna = await add_employee(db, "anna")
    async with serve(db_settings, db) as server, logged_in(server, anna) as user:
        resp = await user.http.post("/api/clients", data="name=A", headers={"X-CSRF-Token": user.csrf,
                                                                            "Content-Type": "application/json"})
        assert resp.status == 422 and (await resp.json())["field"] == "body"
        status, answer = await user.call("GET", "/api/clients/999")
        assert status == 404 and "client 999" in answer["error"]
        status, _ = await user.call("GET", "/api/clients/99999999999999")
        assert status == 404
        status, answer = await user.call("PATCH", "/api/promises/5", {"status": "kept"})
        assert status == 404
        status, answer = await user.call("GET", "/api/promises?limit=100000")
        assert status == 422 and answer["field"] == "limit"


async def test_a_promise_is_listed_by_filters_and_closed_by_whoever_marks_it(db: Database,
                                                                            db_settings: Settings) -> None:
    anna = await add_employee(db, "anna")
    boris = await add_employee(db, "boris")
    async with serve(db_settings, db) as server, logged_in(server, anna) as a, logged_in(server, boris) as b:
        _, client = await a.call("POST", "/api/clients", {"name": "ООО Ромашка",
                                                           "phones": [{"number": "+7 495 111-22-33"}]})
        status, promise = await a.call("POST", "/api/promises", {"client_id": client["id"], "text": "Send invoice",
                                                                 "due_at": "2020-01-10T10:00"})
        assert status == 201 and promise["made_by_name"] == "Employee anna" and promise["overdue"] is True
        await b.call("POST", "/api/promises", {"client_id": client["id"], "text": "Boris's", "due_at": "2099-01-01"})
        _, mine = await b.call("GET", f"/api/promises?made_by={anna}&status=open")
        assert [p["text"] for p in mine["items"]] == ["Send invoice"]  # a colleague can read anna's promises
        status, _ = await b.call("PATCH", f"/api/promises/{promise['id']}", {"text": "Rewritten by boris"})
        assert status == 403
        status, broken = await b.call("PATCH", f"/api/promises/{promise['id']}", {"status": "broken"})
        assert status == 200 and broken["closed_by_name"] == "Employee boris"
        status, answer = await a.call("PATCH", f"/api/promises/{promise['id']}", {"status": "done"})
        assert status == 422 and answer["field"] == "status"
        _, open_left = await a.call("GET", f"/api/promises?client_id={client['id']}&status=open")
        assert [p["text"] for p in open_left["items"]] == ["Boris's"]


async def test_due_promises_are_only_mine(db: Database, db_settings: Settings) -> None:
    anna = await add_employee(db, "anna")
    boris = await add_employee(db, "boris")
    async with serve(db_settings, db) as server, logged_in(server, anna) as a, logged_in(server, boris) as b:
        _, client = await a.call("POST", "/api/clients", {"name": "Клиент"})
        await a.call("POST", "/api/promises", {"client_id": client["id"], "text": "overdue", "due_at": "2021-05-01"})
        await a.call("POST", "/api/promises", {"client_id": client["id"], "text": "later", "due_at": "2099-05-01"})
        await b.call("POST", "/api/promises", {"client_id": client["id"], "text": "boris", "due_at": "2021-05-01"})
        _, due = await a.call("GET", "/api/promises/due")
    assert [p["text"] for p in due["items"]] == ["overdue"]


async def test_client_search_and_phone_attach(db: Database, db_settings: Settings) -> None:
    anna = await add_employee(db, "anna")
    async with serve(db_settings, db) as server, logged_in(server, anna) as a:
        _, ivan = await a.call("POST", "/api/clients", {"name": "Иван Петров", "company": "Стройка"})
        await a.call("POST", "/api/clients", {"name": "Пётр Иванов"})
        status, phone = await a.call("POST", f"/api/clients/{ivan['id']}/phones", {"number": "8 916 555 44 33"})
        assert status == 201 and phone["e164"] == "+79165554433"
        status, dup = await a.call("POST", f"/api/clients/{ivan['id']}/phones", {"number": "+79165554433"})
        assert status == 409 and dup["field"] == "number"
        _, by_phone = await a.call("GET", "/api/clients?q=5554433")
        _, by_name = await a.call("GET", "/api/clients?q=стройка")
        _, paged = await a.call("GET", "/api/clients?limit=1&offset=1")
    assert [c["name"] for c in by_phone["items"]] == ["Иван Петров"]
    assert [c["name"] for c in by_name["items"]] == ["Иван Петров"]
    assert paged["total"] == 2 and len(paged["items"]) == 1


async def test_payment_makes_the_client_regular_when_the_rule_says_so(db: Database, db_settings: Settings) -> None:
    regular = pytest.importorskip("callpop.store.records.regular")
    assert hasattr(regular, "recompute_status")
    anna = await add_employee(db, "anna")
    sue = await add_employee(db, "sue", role="supervisor")
    async with serve(db_settings, db) as server, logged_in(server, anna) as a, logged_in(server, sue) as boss:
        _, client = await a.call("POST", "/api/clients", {"name": "Постоянный"})
        for title in ("Deal 1", "Deal 2"):
            _, deal = await a.call("POST", "/api/agreements", {"client_id": client["id"], "title": title,
                                                               "status": "won", "amount": 1000})
            status, _ = await boss.call("POST", "/api/payments", {"client_id": client["id"], "agreement_id": deal["id"],
                                                               "amount": 1000, "paid_at": "2026-01-15T12:00"})
            assert status == 201
        _, after = await a.call("GET", f"/api/clients/{client['id']}")
    assert after["status"] == "regular" and after["status_source"] == "rule"


async def test_click_to_call_rings_my_own_device_first(db: Database, db_settings: Settings) -> None:
    anna = await add_employee(db, "anna", extensions=("101",))
    boris = await add_employee(db, "boris", extensions=("102",))
    nobody = await add_employee(db, "nobody")
    settings = db_settings.replace(agents={"SIP/150010002": "102"})
    ami = FakeAmi()
    async with serve(settings, db, ami) as server, logged_in(server, anna) as a, logged_in(server, boris) as b, \
            logged_in(server, nobody) as n:
        status, body = await a.call("POST", "/api/originate", {"client_phone": "8 (916) 123-45-67"})
        assert status == 202 and body["channel"] == "PJSIP/101"
        await b.call("POST", "/api/originate", {"client_phone": "+7 916 123-45-67"})
        status, body = await n.call("POST", "/api/originate", {"client_phone": "+7 916 123-45-67"})
        assert status == 409 and "extension" in body["error"]
        ami.fail = True
        status, body = await a.call("POST", "/api/originate", {"client_phone": "+7 916 123-45-67"})
        assert status == 503
    # each manager's phone shows their own caller ID, never the client's number
    assert ami.calls == [("PJSIP/101", "79161234567", "from-internal", "Employee anna <101>"),
                         ("SIP/150010002", "79161234567", "from-internal", "Employee boris <102>")]


async def test_language_choice_is_stored(db: Database, db_settings: Settings) -> None:
    anna = await add_employee(db, "anna")
    async with serve(db_settings, db) as server, logged_in(server, anna) as a:
        _, me = await a.call("GET", "/api/me")
        assert me["language"] == "ru"
        status, _ = await a.call("PATCH", "/api/me", {"language": "de"})
        assert status == 422
        await a.call("PATCH", "/api/me", {"language": "en"})
        _, me = await a.call("GET", "/api/me")
    assert me["language"] == "en"


async def test_openapi_document_describes_every_api_route(db: Database, db_settings: Settings) -> None:
    from callpop.server.openapi import openapi_path

    async with serve(db_settings, db) as server, logged_in(server, None) as anon:
        status, doc = await anon.call("GET", "/api/openapi.json")
        routes = [(r.method.lower(), openapi_path(r.resource.canonical)) for r in server.app.router.routes()
                  if r.resource is not None and r.resource.canonical.startswith("/api/") and r.method != "HEAD"]
    assert status == 200 and doc["openapi"].startswith("3.1")
    assert len(routes) > 30
    for method, path in routes:
        assert method in doc["paths"].get(path, {}), f"{method.upper()} {path} missing from the OpenAPI document"
    create = doc["paths"]["/api/promises"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    schema = doc["components"]["schemas"][create["$ref"].rsplit("/", 1)[1]]
    assert schema["required"] == ["client_id", "text"]  # what the handler enforces


async def test_openapi_document_covers_every_api_route_of_the_real_app(db: Database, db_settings: Settings) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from callpop.app import create_app
    from callpop.server.openapi import openapi_path

    app = create_app(db_settings, db=db, start_ami=False)
    routes = [(r.method.lower(), openapi_path(r.resource.canonical)) for r in app.router.routes()
              if r.resource is not None and r.resource.canonical.startswith("/api/") and r.method != "HEAD"]
    async with TestClient(TestServer(app)) as http:
        resp = await http.get("/api/openapi.json")
        doc = await resp.json()
    assert resp.status == 200
    missing = [f"{m.upper()} {p}" for m, p in routes if m not in doc["paths"].get(p, {})]
    assert missing == [], f"routes missing from the OpenAPI document: {missing}"
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert documented == set(routes), "the document describes a route the app does not serve"


async def test_client_card_and_its_history_pages(db: Database, db_settings: Settings) -> None:
    anna = await add_employee(db, "anna", name="Анна")
    settings = db_settings.replace(history=dataclasses.replace(db_settings.history, notes=2))
    async with serve(settings, db) as server, logged_in(server, anna) as a:
        _, client = await a.call("POST", "/api/clients", {"name": "Клиент", "phones": [{"number": "+79161112233"}]})
        for i in range(5):
            await a.call("POST", "/api/notes", {"client_id": client["id"], "text": f"note {i}"})
        await a.call("POST", "/api/promises", {"client_id": client["id"], "text": "late", "due_at": "2020-01-01"})
        status, card = await a.call("GET", f"/api/clients/{client['id']}/card")
        assert status == 200
        assert card["name"] == "Клиент" and card["phones"][0]["e164"] == "+79161112233"
        assert card["promises"][0]["overdue"] is True and card["promises"][0]["made_by"]["name"] == "Анна"
        assert len(card["notes"]) == 2 and card["notes_more"] is True
        status, more = await a.call("GET", f"/api/clients/{client['id']}/history?section=notes&offset=2&limit=10")
        assert status == 200 and len(more["items"]) == 3 and more["has_more"] is False
        seen = [n["text"] for n in card["notes"]] + [n["text"] for n in more["items"]]
        assert sorted(seen) == [f"note {i}" for i in range(5)]
        status, bad = await a.call("GET", f"/api/clients/{client['id']}/history?section=secrets")
        assert status == 422 and bad["field"] == "section"
        status, _ = await a.call("GET", "/api/clients/424242/card")
        assert status == 404
