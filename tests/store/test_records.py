"""The store's validated records, on both databases: what a manager or an import would
notice — bad input named by field, authorship kept, closed promises dated, filters right."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from callpop.settings import Settings
from callpop.store.db import Database
from callpop.store.errors import Conflict, Forbidden, NotFound, ValidationError
from callpop.store.models import Employee
from callpop.store.records.clients import add_phone, create_client, list_clients, update_client
from callpop.store.records.sales import Actor, create_record, due_promises, get_record, list_records, update_record

NOW = dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC)  # 12:00 in Moscow


async def _employee(session: AsyncSession, login: str, role: str = "manager") -> Actor:
    emp = Employee(name=f"Employee {login}", login=login, password_hash="x", role=role)
    session.add(emp)
    await session.flush()
    return Actor(emp.id, role)


async def test_client_with_phones_is_stored_normalised_and_readable(db: Database, settings: Settings) -> None:
    async with db.sessions() as s:
        anna = await _employee(s, "anna")
        client = await create_client(s, {"name": " Иван Петров ", "company": "ООО Ромашка",
                                         "phones": [{"number": "8 (916) 123-45-67", "label": "mobile"}]},
                                     anna, settings)
        await s.commit()
    assert client["name"] == "Иван Петров"
    assert client["responsible_id"] == anna.id  # the creating manager is responsible
    assert client["responsible_name"] == "Employee anna"
    assert client["phones"][0]["e164"] == "+79161234567"
    assert client["phones"][0]["raw"] == "8 (916) 123-45-67"
    assert client["status"] == "new"


BAD_CLIENTS: list[tuple[dict[str, object], str]] = [
    ({}, "name"),
    ({"name": "  "}, "name"),
    ({"name": "x" * 301}, "name"),
    ({"name": "A", "phones": [{"number": "12"}]}, "phones[0].number"),
    ({"name": "A", "phones": [{"number": "call me maybe"}]}, "phones[0].number"),
    ({"name": "A", "status": "vip"}, "status"),
    ({"name": "A", "responsible_id": 999}, "responsible_id"),
    ({"name": "A", "colour": "red"}, "colour"),
    ({"name": 5}, "name"),
]


async def test_bad_client_input_names_the_field(db: Database, settings: Settings) -> None:
    async with db.sessions() as s:
        anna = await _employee(s, "anna")
        for body, field in BAD_CLIENTS:
            with pytest.raises(ValidationError) as err:
                await create_client(s, body, anna, settings)
            assert err.value.field == field, body


async def test_same_number_twice_on_one_client_is_refused_but_two_clients_may_share(
        db: Database, settings: Settings) -> None:
    async with db.sessions() as s:
        anna = await _employee(s, "anna")
        first = await create_client(s, {"name": "A", "phones": [{"number": "+7 916 123-45-67"}]}, anna, settings)
        with pytest.raises(Conflict) as err:
            await add_phone(s, first["id"], {"number": "89161234567"}, anna, settings)
        assert err.value.field == "number"
        second = await create_client(s, {"name": "B", "phones": [{"number": "79161234567"}]}, anna, settings)
        await s.commit()
        page = await list_clients(s, {"q": "916 123"}, settings)
    assert {c["id"] for c in page.items} == {first["id"], second["id"]}


async def test_client_search_finds_cyrillic_names_whatever_the_case(db: Database, settings: Settings) -> None:
    async with db.sessions() as s:
        anna = await _employee(s, "anna")
        wanted = await create_client(s, {"name": "Иван Петров", "company": "ООО Ромашка"}, anna, settings)
        await create_client(s, {"name": "Пётр Сидоров"}, anna, settings)
        await s.commit()
        by_lower = await list_clients(s, {"q": "петров"}, settings)
        by_company = await list_clients(s, {"q": "Ромашка"}, settings)
    assert [c["id"] for c in by_lower.items] == [wanted["id"]]
    assert [c["id"] for c in by_company.items] == [wanted["id"]]


async def test_setting_status_by_hand_is_remembered(db: Database, settings: Settings) -> None:
    async with db.sessions() as s:
        anna = await _employee(s, "anna")
        client = await create_client(s, {"name": "A"}, anna, settings)
        changed = await update_client(s, client["id"], {"status": "regular"}, anna, settings)
        assert (changed["status"], changed["status_source"]) == ("regular", "manual")
        back = await update_client(s, client["id"], {"status": None}, anna, settings)
    assert back["status_source"] == "rule"


async def test_promise_closed_by_a_colleague_records_who_closed_it(db: Database, settings: Settings) -> None:
    async with db.sessions() as s:
        anna = await _employee(s, "anna")
        boris = await _employee(s, "boris")
        client = await create_client(s, {"name": "A"}, anna, settings)
        promise = await create_record(s, "promise", {"client_id": client["id"], "text": "Call back with prices",
                                                     "due_at": "2026-03-10T15:00"}, anna, settings, now=NOW)
        assert promise["made_by_id"] == anna.id
        assert promise["due_at"] == "2026-03-10T12:00:00Z"  # 15:00 Moscow time
        with pytest.raises(Forbidden):
            await update_record(s, "promise", promise["id"], {"text": "Changed"}, boris, settings)
        kept = await update_record(s, "promise", promise["id"], {"status": "kept"}, boris, settings, now=NOW)
        assert (kept["status"], kept["closed_by_id"], kept["closed_by_name"]) == ("kept", boris.id, "Employee boris")
        assert kept["closed_at"] == "2026-03-10T09:00:00Z"
        reopened = await update_record(s, "promise", promise["id"], {"status": "open"}, anna, settings)
    assert reopened["closed_by_id"] is None and reopened["closed_at"] is None


BAD_RECORDS: list[tuple[str, dict[str, object], str]] = [
    ("promise", {"text": "x"}, "client_id"),
    ("promise", {"client_id": "C", "text": "x"}, "client_id"),
    ("promise", {"client_id": 1, "text": "x", "due_at": "tomorrow"}, "due_at"),
    ("promise", {"client_id": 1, "text": "x", "due_at": "2026-02-30T10:00"}, "due_at"),
    ("promise", {"client_id": 1, "text": "x" * 2001}, "text"),
    ("promise", {"client_id": 1, "text": "x", "call_id": 77}, "call_id"),
    ("promise", {"client_id": 999, "text": "x"}, "client_id"),
    ("payment", {"client_id": 1, "amount": "-5", "paid_at": "2026-03-01"}, "amount"),
    ("payment", {"client_id": 1, "amount": "1.005", "paid_at": "2026-03-01"}, "amount"),
    ("payment", {"client_id": 1, "amount": "ten", "paid_at": "2026-03-01"}, "amount"),
    ("payment", {"client_id": 1, "amount": 10}, "paid_at"),
    ("payment", {"client_id": 1, "amount": 10, "paid_at": "2026-03-01", "currency": "rubles"}, "currency"),
    ("payment", {"client_id": 1, "amount": 10, "paid_at": "2026-03-01", "agreement_id": 5}, "agreement_id"),
    ("agreement", {"client_id": 1, "title": "Deal", "status": "maybe"}, "status"),
    ("agreement", {"client_id": 1}, "title"),
    ("note", {"client_id": 1, "text": "x\x00y"}, "text"),
    ("receivable", {"client_id": 1, "amount": 5}, "issued_at"),
]


async def test_bad_record_input_names_the_field(db: Database, settings: Settings) -> None:
    async with db.sessions() as s:
        anna = await _employee(s, "anna")
        client = await create_client(s, {"name": "A"}, anna, settings)
        assert client["id"] == 1  # the cases refer to client 1
        for kind, body, field in BAD_RECORDS:
            with pytest.raises(ValidationError) as err:
                await create_record(s, kind, body, anna, settings)
            assert err.value.field == field, (kind, body)


async def test_lists_filter_by_client_status_author_and_due(db: Database, settings: Settings) -> None:
    async with db.sessions() as s:
        anna = await _employee(s, "anna")
        boris = await _employee(s, "boris")
        a = await create_client(s, {"name": "A"}, anna, settings)
        b = await create_client(s, {"name": "B"}, anna, settings)
        for who, client, due in [(anna, a, "2026-03-09T10:00"), (anna, a, "2026-03-12T10:00"),
                                 (boris, a, "2026-03-11T10:00"), (anna, b, "2026-03-08T10:00")]:
            await create_record(s, "promise", {"client_id": client["id"], "text": f"to {client['name']}",
                                               "due_at": due}, who, settings, now=NOW)
        await s.commit()
        mine_for_a = await list_records(s, "promise", {"client_id": str(a["id"]), "made_by": str(anna.id)},
                                        settings, now=NOW)
        assert [p["due_at"][:10] for p in mine_for_a.items] == ["2026-03-09", "2026-03-12"]
        assert mine_for_a.items[0]["overdue"] is True and mine_for_a.items[1]["overdue"] is False
        due_soon = await list_records(s, "promise", {"due_after": "2026-03-09", "due_before": "2026-03-12"},
                                      settings)
        assert due_soon.total == 2
        paged = await list_records(s, "promise", {"limit": "1", "offset": "1"}, settings)
        assert paged.total == 4 and len(paged.items) == 1 and paged.items[0]["due_at"][:10] == "2026-03-09"
        with pytest.raises(ValidationError) as err:
            await list_records(s, "promise", {"status": "done"}, settings)
        assert err.value.field == "status"


async def test_due_promises_are_mine_open_and_due_by_tonight_overdue_first(db: Database,
                                                                           settings: Settings) -> None:
    async with db.sessions() as s:
        anna = await _employee(s, "anna")
        boris = await _employee(s, "boris")
        c = await create_client(s, {"name": "Клиент"}, anna, settings)
        texts = {}
        for who, due, text in [(anna, "2026-03-10T23:30", "tonight"), (anna, "2026-03-11T00:30", "tomorrow"),
                               (anna, "2026-03-01T10:00", "last week"), (boris, "2026-03-09T10:00", "not mine")]:
            p = await create_record(s, "promise", {"client_id": c["id"], "text": text, "due_at": due},
                                    who, settings, now=NOW)
            texts[text] = p["id"]
        await update_record(s, "promise", texts["last week"], {"status": "broken"}, anna, settings)
        await create_record(s, "promise", {"client_id": c["id"], "text": "old", "due_at": "2026-03-02T10:00"},
                            anna, settings, now=NOW)
        due = await due_promises(s, anna.id, settings, now=NOW)
    assert [p["text"] for p in due] == ["old", "tonight"]
    assert due[0]["overdue"] and not due[1]["overdue"]
    assert due[0]["client_name"] == "Клиент"


async def test_payment_amounts_keep_cents_and_agreement_must_be_the_clients(db: Database,
                                                                           settings: Settings) -> None:
    async with db.sessions() as s:
        anna = await _employee(s, "anna")
        a = await create_client(s, {"name": "A"}, anna, settings)
        b = await create_client(s, {"name": "B"}, anna, settings)
        deal = await create_record(s, "agreement", {"client_id": a["id"], "title": "Поставка", "amount": 1000.5},
                                   anna, settings)
        assert (deal["amount"], deal["currency"], deal["status"]) == ("1000.50", "RUB", "open")
        paid = await create_record(s, "payment", {"client_id": a["id"], "agreement_id": deal["id"],
                                                  "amount": "1 000,50", "paid_at": "2026-03-01T12:00:00Z"},
                                   anna, settings)
        assert Decimal(paid["amount"]) == Decimal("1000.50")
        with pytest.raises(ValidationError):
            await create_record(s, "payment", {"client_id": b["id"], "agreement_id": deal["id"], "amount": 5,
                                               "paid_at": "2026-03-01"}, anna, settings)
        won = await update_record(s, "agreement", deal["id"], {"status": "won"}, anna, settings, now=NOW)
    assert won["closed_at"] == "2026-03-10T09:00:00Z"


async def test_missing_record_is_not_found(db: Database, settings: Settings) -> None:
    async with db.sessions() as s:
        anna = await _employee(s, "anna")
        with pytest.raises(NotFound):
            await get_record(s, "note", 12345)
        with pytest.raises(NotFound):
            await update_record(s, "promise", 12345, {"status": "kept"}, anna, settings)


async def test_money_lists_filter_by_dates_and_open_debts(db: Database, settings: Settings) -> None:
    async with db.sessions() as s:
        anna = await _employee(s, "anna")
        c = await create_client(s, {"name": "Должник"}, anna, settings)
        for day in ("2026-01-10", "2026-02-10", "2026-03-10"):
            await create_record(s, "payment", {"client_id": c["id"], "amount": 100, "paid_at": day}, anna, settings)
        debt = await create_record(s, "receivable", {"client_id": c["id"], "amount": 500, "issued_at": "2026-01-01",
                                                     "due_at": "2026-02-01"}, anna, settings)
        await create_record(s, "receivable", {"client_id": c["id"], "amount": 50, "issued_at": "2026-01-01",
                                              "settled_at": "2026-01-20"}, anna, settings)
        await s.commit()
        feb_on = await list_records(s, "payment", {"paid_after": "2026-02-01"}, settings)
        assert [p["paid_at"][:7] for p in feb_on.items] == ["2026-03", "2026-02"]  # newest first
        still_open = await list_records(s, "receivable", {"open": "true"}, settings)
        assert [r["id"] for r in still_open.items] == [debt["id"]]
        settled = await update_record(s, "receivable", debt["id"], {"settled_at": "2026-03-01"}, anna, settings)
        assert settled["settled_at"] == "2026-02-28T21:00:00Z"  # midnight in Moscow
        assert (await list_records(s, "receivable", {"open": "true"}, settings)).total == 0
