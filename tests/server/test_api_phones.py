"""The phones resource and the number lookup over real HTTP, on both databases: read one
number, list by client or by a number as a caller dials it (E.164 first, else the last 10
digits, like the pop), and the pop's own card JSON for a number."""

from __future__ import annotations

from callpop.settings import Settings
from callpop.store.db import Database
from tests.support.api import add_employee, logged_in, serve


async def test_phones_and_lookup_need_a_login(db: Database, db_settings: Settings) -> None:
    async with serve(db_settings, db) as server, logged_in(server, None) as anon:
        for path in ("/api/phones", "/api/phones/1", "/api/lookup?number=89161112233"):
            status, body = await anon.call("GET", path)
            assert status == 401, path
            assert body == {"error": "login required", "field": None, "message": "Нужно войти в систему"}, path


async def test_read_and_list_phones_by_client_and_by_number(db: Database, db_settings: Settings) -> None:
    anna = await add_employee(db, "anna")
    async with serve(db_settings, db) as server, logged_in(server, anna) as a:
        _, ivan = await a.call("POST", "/api/clients", {"name": "Иван", "phones": [
            {"number": "+7 916 111-22-33", "label": "моб."}, {"number": "+7 495 000-00-01"}]})
        _, olga = await a.call("POST", "/api/clients", {"name": "Ольга", "phones": [{"number": "9161112233"}]})
        _, petr = await a.call("POST", "/api/clients", {"name": "Пётр", "phones": [{"number": "+7 916 234-56-78"}]})
        phone_id = ivan["phones"][0]["id"]
        status, one = await a.call("GET", f"/api/phones/{phone_id}")
        assert status == 200
        assert (one["client_id"], one["e164"], one["label"]) == (ivan["id"], "+79161112233", "моб.")
        status, missing = await a.call("GET", "/api/phones/999999")
        assert status == 404 and missing["error"]

        _, of_ivan = await a.call("GET", f"/api/phones?client_id={ivan['id']}")
        assert [p["e164"] for p in of_ivan["items"]] == ["+79161112233", "+74950000001"]
        # the exact E.164 number wins over a bare tail match (Ольга's 9161112233 is read as +7 too)
        _, exact = await a.call("GET", "/api/phones", params={"number": "8 (916) 111-22-33"})
        assert sorted(p["client_id"] for p in exact["items"]) == sorted([ivan["id"], olga["id"]])
        # a wrong country code from the carrier: no exact number, the 10-digit tail still finds it
        _, by_tail = await a.call("GET", "/api/phones", params={"number": "+1 916 234 5678"})
        assert [p["client_id"] for p in by_tail["items"]] == [petr["id"]]
        # ... but once a US client has that very number, the exact match wins
        _, john = await a.call("POST", "/api/clients", {"name": "John", "phones": [{"number": "+1 916 234 5678"}]})
        _, by_e164 = await a.call("GET", "/api/phones", params={"number": "+19162345678"})
        assert [p["client_id"] for p in by_e164["items"]] == [john["id"]]
        _, both = await a.call("GET", "/api/phones", params={"number": "+74950000001", "client_id": olga["id"]})
        assert both == {"items": [], "total": 0, "limit": 50, "offset": 0}
        _, junk = await a.call("GET", "/api/phones", params={"number": "abc"})
        assert junk["total"] == 0
        status, bad = await a.call("GET", "/api/phones?client_id=x")
        assert status == 422 and bad["field"] == "client_id"


async def test_lookup_answers_the_pops_cards(db: Database, db_settings: Settings) -> None:
    anna = await add_employee(db, "anna", name="Анна")
    async with serve(db_settings, db) as server, logged_in(server, anna) as a:
        _, ivan = await a.call("POST", "/api/clients", {"name": "Иван", "phones": [{"number": "+79161112233"}]})
        await a.call("POST", "/api/promises", {"client_id": ivan["id"], "text": "перезвонить", "due_at": "2020-01-01"})
        status, found = await a.call("GET", "/api/lookup", params={"number": "8 916 111 22 33"})
        assert status == 200
        assert (found["e164"], found["looked_up"]) == ("+79161112233", True)
        [card] = found["matches"]
        assert (card["id"], card["name"], card["matched_by"]) == (ivan["id"], "Иван", "e164")
        assert card["promises"][0]["text"] == "перезвонить" and card["promises"][0]["overdue"] is True
        _, card_by_id = await a.call("GET", f"/api/clients/{ivan['id']}/card")
        assert {k: v for k, v in card.items() if k != "matched_by"} == \
            {k: v for k, v in card_by_id.items() if k != "matched_by"}
        _, unknown = await a.call("GET", "/api/lookup", params={"number": "+79035550000"})
        assert (unknown["looked_up"], unknown["matches"]) == (True, [])
        _, internal = await a.call("GET", "/api/lookup", params={"number": "101"})
        assert (internal["looked_up"], internal["matches"]) == (False, [])
        status, bad = await a.call("GET", "/api/lookup")
        assert status == 422 and bad["field"] == "number"
