"""Who may change what a bonus is computed from, and the trail every such change leaves.

The attack that motivated it, step by step through the API: a manager posts a huge
payment, a colleague edits it, reassigns another manager's client to themselves, sets a
client "regular" by hand and deletes another manager's client's phone. Each is refused
now; a supervisor may do them, and each of the supervisor's changes is in the audit trail.
"""

from __future__ import annotations

from sqlalchemy import select

from callpop.settings import Settings
from callpop.store.db import Database
from callpop.store.models import AuditEntry
from tests.support.api import add_employee as add_api_employee
from tests.support.api import logged_in, serve
from tests.support.kpi_rows import employee
from tests.support.kpi_rows import serve as serve_site


async def test_managers_cannot_touch_money_status_or_a_colleagues_client(db: Database, db_settings: Settings) -> None:
    anna = await add_api_employee(db, "anna")
    boris = await add_api_employee(db, "boris")
    sue = await add_api_employee(db, "sue", role="supervisor")
    async with serve(db_settings, db) as server, logged_in(server, anna) as a, logged_in(server, boris) as b, \
            logged_in(server, sue) as s:
        _, annas = await a.call("POST", "/api/clients", {"name": "Клиент Анны", "phones": [{"number": "+79161234567"}]})
        assert annas["responsible_id"] == anna  # the creator is responsible
        # money: managers read, never write
        status, body = await a.call("POST", "/api/payments", {"client_id": annas["id"], "amount": 99_999_999,
                                                              "paid_at": "2026-03-01"})
        assert status == 403 and "supervisors" in body["error"]
        status, _ = await a.call("POST", "/api/receivables", {"client_id": annas["id"], "amount": 5,
                                                              "issued_at": "2026-03-01"})
        assert status == 403
        status, payment = await s.call("POST", "/api/payments", {"client_id": annas["id"], "amount": 1000,
                                                                 "paid_at": "2026-03-01"})
        assert status == 201
        status, _ = await b.call("PATCH", f"/api/payments/{payment['id']}", {"amount": "0.01"})
        assert status == 403
        assert (await b.call("GET", f"/api/payments/{payment['id']}"))[0] == 200
        # the responsible manager and the manual status: supervisors only
        status, body = await b.call("PATCH", f"/api/clients/{annas['id']}", {"responsible_id": boris})
        assert status == 403 and body["field"] == "responsible_id"
        status, body = await a.call("PATCH", f"/api/clients/{annas['id']}", {"status": "regular"})
        assert status == 403 and body["field"] == "status"
        status, body = await a.call("POST", "/api/clients", {"name": "X", "responsible_id": boris})
        assert status == 403 and body["field"] == "responsible_id"
        status, body = await a.call("POST", "/api/clients", {"name": "X", "status": "regular"})
        assert status == 403 and body["field"] == "status"
        # a colleague's client: no edits, no deleting its numbers; attaching a number is the desk's job
        phone_id = annas["phones"][0]["id"]
        assert (await b.call("DELETE", f"/api/phones/{phone_id}"))[0] == 403
        assert (await b.call("PATCH", f"/api/phones/{phone_id}", {"label": "fake"}))[0] == 403
        assert (await b.call("PATCH", f"/api/clients/{annas['id']}", {"name": "Чужой"}))[0] == 403
        assert (await b.call("POST", f"/api/clients/{annas['id']}/phones", {"number": "+79035550000"}))[0] == 201
        assert (await a.call("PATCH", f"/api/clients/{annas['id']}", {"name": "Клиент Анны (ООО)"}))[0] == 200
        # the supervisor may do all of it
        assert (await s.call("PATCH", f"/api/clients/{annas['id']}", {"responsible_id": boris,
                                                                      "status": "regular"}))[0] == 200
        assert (await s.call("PATCH", f"/api/payments/{payment['id']}", {"amount": "1500.50"}))[0] == 200
        _, client = await a.call("GET", f"/api/clients/{annas['id']}")
    assert (client["responsible_id"], client["status"], client["status_source"]) == (boris, "regular", "manual")


async def test_a_manager_changes_only_what_they_wrote(db: Database, db_settings: Settings) -> None:
    anna = await add_api_employee(db, "anna")
    boris = await add_api_employee(db, "boris")
    async with serve(db_settings, db) as server, logged_in(server, anna) as a, logged_in(server, boris) as b:
        _, client = await a.call("POST", "/api/clients", {"name": "Общий"})
        _, deal = await a.call("POST", "/api/agreements", {"client_id": client["id"], "title": "Поставка"})
        _, promise = await a.call("POST", "/api/promises", {"client_id": client["id"], "text": "Перезвонить"})
        _, note = await a.call("POST", "/api/notes", {"client_id": client["id"], "text": "Любит чай"})
        assert (await b.call("PATCH", f"/api/agreements/{deal['id']}", {"status": "won"}))[0] == 403
        assert (await b.call("PATCH", f"/api/notes/{note['id']}", {"text": "Не любит чай"}))[0] == 403
        assert (await b.call("PATCH", f"/api/promises/{promise['id']}", {"text": "Не звонить"}))[0] == 403
        assert (await b.call("PATCH", f"/api/promises/{promise['id']}", {"status": "kept"}))[0] == 200
        assert (await a.call("PATCH", f"/api/agreements/{deal['id']}", {"status": "won"}))[0] == 200


async def test_every_money_and_kpi_change_is_in_the_trail_for_supervisors(db: Database,
                                                                         db_settings: Settings) -> None:
    anna = await add_api_employee(db, "anna")
    boris = await add_api_employee(db, "boris")
    sue = await add_api_employee(db, "sue", role="supervisor")
    async with serve(db_settings, db) as server, logged_in(server, anna) as a, logged_in(server, sue) as s:
        _, client = await a.call("POST", "/api/clients", {"name": "Аудит"})
        _, deal = await a.call("POST", "/api/agreements", {"client_id": client["id"], "title": "Сделка",
                                                           "amount": 1000})
        await a.call("PATCH", f"/api/agreements/{deal['id']}", {"status": "won"})
        _, payment = await s.call("POST", "/api/payments", {"client_id": client["id"], "amount": 1000,
                                                            "paid_at": "2026-03-01T12:00"})
        await s.call("PATCH", f"/api/payments/{payment['id']}", {"amount": "0.01"})
        await s.call("PATCH", f"/api/clients/{client['id']}", {"responsible_id": boris})
        await a.call("POST", "/api/notes", {"client_id": client["id"], "text": "не деньги"})  # not audited
        assert (await a.call("GET", "/api/audit"))[0] == 403  # the trail is the supervisors'
        status, trail = await s.call("GET", "/api/audit", params={"client_id": client["id"], "limit": 100})
        assert status == 200
        status, only_payment = await s.call("GET", "/api/audit", params={"entity": "payment",
                                                                         "entity_id": payment["id"]})
        assert (await s.call("GET", "/api/audit", params={"entity": "bonus"}))[0] == 422
    rows = [(e["entity"], e["field"], e["old"], e["new"], e["employee_id"]) for e in reversed(trail["items"])]
    assert ("agreement", "amount", None, "1000", anna) in rows
    assert ("agreement", "status", "open", "won", anna) in rows
    assert ("payment", "amount", None, "1000", sue) in rows
    assert ("payment", "amount", "1000", "0.01", sue) in rows
    assert ("client", "responsible_id", str(anna), str(boris), sue) in rows
    assert not any(entity == "note" for entity, *_ in rows)
    assert [(e["field"], e["old"], e["new"]) for e in only_payment["items"] if e["field"] == "amount"] == [
        ("amount", "1000", "0.01"), ("amount", None, "1000")]
    assert only_payment["items"][0]["employee_name"] == "Employee sue"
    async with db.sessions() as session:
        count = len((await session.execute(select(AuditEntry.id))).all())
    assert count == trail["total"]


async def test_the_dashboard_shows_the_latest_changes_and_plans_are_in_the_trail(db: Database,
                                                                                settings: Settings) -> None:
    async with db.sessions() as session:
        anna = await employee(session, "Анна", "101", login="anna")
        await employee(session, "Sue Visor", role="supervisor", login="sue")
        await session.commit()
        anna_id = anna.id
    async with serve_site(db, settings) as site:
        sue = await site.login("sue")
        token = (await sue.get("/dashboard")).headers["X-CSRF-Token"]
        resp = await sue.put("/api/plans", json={"month": "2026-03", "plans": [
            {"employee_id": anna_id, "kpi": "contacts", "target": 40}]}, headers={"X-CSRF-Token": token})
        assert resp.status == 200
        page = await (await sue.get("/dashboard")).text()
        section = page.split('id="audit"')[1]
        assert "Sue Visor" in section and "<td>40</td>" in section
        assert "Контакты с постоянными клиентами · март 2026" in section  # the KPI and month in words
        manager = await site.login("anna")
        assert (await manager.get("/dashboard")).status == 403
