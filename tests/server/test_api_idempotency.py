"""A save sent again with its Idempotency-Key is stored once, on both databases: the desk
resends a promise whose answer it never got (its instance died after the commit), maybe to
another instance, and the client's card must show it once."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import func, select

from callpop.settings import Settings
from callpop.store.db import Database
from callpop.store.models import Agreement, Note, Promise
from tests.support.api import add_employee, logged_in, serve


async def _count(db: Database, model: type[Promise] | type[Agreement] | type[Note]) -> int:
    async with db.sessions() as s:
        return int((await s.execute(select(func.count()).select_from(model))).scalar_one())


async def test_a_save_sent_again_with_its_key_is_stored_once_and_answered_with_the_first(
        db: Database, db_settings: Settings) -> None:
    anna = await add_employee(db, "anna")
    async with serve(db_settings, db) as server, logged_in(server, anna) as user:
        _, client = await user.call("POST", "/api/clients", {"name": "Клиент"})
        saves = [("/api/promises", {"client_id": client["id"], "text": "Пришлю счёт завтра",
                                    "due_at": "2026-03-05T10:00"}),
                 ("/api/agreements", {"client_id": client["id"], "title": "Поставка", "amount": "1500.00"}),
                 ("/api/notes", {"client_id": client["id"], "text": "Просил звонить после обеда"})]
        for path, body in saves:
            key = {"Idempotency-Key": str(uuid.uuid4())}
            first_status, first = await user.call("POST", path, body, headers=key)
            again_status, again = await user.call("POST", path, body, headers=key)
            assert (first_status, again_status) == (201, 200), (path, first, again)
            assert again == first
        status, page = await user.call("GET", f"/api/promises?client_id={client['id']}")
        assert status == 200 and [p["text"] for p in page["items"]] == ["Пришлю счёт завтра"]
        status, card = await user.call("GET", f"/api/clients/{client['id']}/card")
        assert [n["text"] for n in card["notes"]] == ["Просил звонить после обеда"]
    assert [await _count(db, m) for m in (Promise, Agreement, Note)] == [1, 1, 1]


async def test_two_copies_racing_store_one_and_both_answer_with_it(db: Database, db_settings: Settings) -> None:
    """The first copy still in flight when the second arrives (two tabs, two instances)."""
    anna = await add_employee(db, "anna")
    async with serve(db_settings, db) as server, logged_in(server, anna) as one, logged_in(server, anna) as two:
        _, client = await one.call("POST", "/api/clients", {"name": "Клиент"})
        body = {"client_id": client["id"], "text": "Перезвоню в пятницу"}
        key = {"Idempotency-Key": str(uuid.uuid4())}
        answers = await asyncio.gather(*(u.call("POST", "/api/promises", body, headers=key)
                                         for u in (one, two, one, two)))
    assert sorted(status for status, _ in answers) == [200, 200, 200, 201]
    assert len({item["id"] for _, item in answers}) == 1
    assert await _count(db, Promise) == 1


async def test_keys_are_per_author_and_new_content_needs_a_new_key(db: Database, db_settings: Settings) -> None:
    anna = await add_employee(db, "anna")
    boris = await add_employee(db, "boris")
    key = {"Idempotency-Key": "0f8e3c52-5b1d-4c1e-9a57-d2c1f0a4b6e1"}
    async with serve(db_settings, db) as server, logged_in(server, anna) as a, logged_in(server, boris) as b:
        _, client = await a.call("POST", "/api/clients", {"name": "Клиент"})
        body = {"client_id": client["id"], "text": "Пришлю договор"}
        status_a, mine = await a.call("POST", "/api/promises", body, headers=key)
        status_b, theirs = await b.call("POST", "/api/promises", body, headers=key)  # a colleague's own save
        assert (status_a, status_b) == (201, 201) and mine["id"] != theirs["id"]
        assert theirs["made_by_id"] == boris
        status, answer = await a.call("POST", "/api/promises", {**body, "text": "Другой текст"}, headers=key)
        assert status == 409 and answer["field"] == "Idempotency-Key", answer
        status, answer = await a.call("POST", "/api/promises", body, headers={"Idempotency-Key": "short"})
        assert status == 422 and answer["field"] == "Idempotency-Key", answer
        status, _ = await a.call("POST", "/api/promises", body)  # no key: every request is a new promise
        assert status == 201
    assert await _count(db, Promise) == 3


async def test_the_api_document_tells_which_saves_take_a_key(db: Database, db_settings: Settings) -> None:
    async with serve(db_settings, db) as server, logged_in(server, None) as anon:
        _, doc = await anon.call("GET", "/api/openapi.json")
    takes_key = sorted(path for path, ops in doc["paths"].items() for method, op in ops.items()
                       if any(p["name"] == "Idempotency-Key" for p in op.get("parameters", [])))
    assert takes_key == ["/api/agreements", "/api/notes", "/api/promises"]
    assert "200" in doc["paths"]["/api/promises"]["post"]["responses"]
