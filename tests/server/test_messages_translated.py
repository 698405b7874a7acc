"""Every message a person can get from the server is in their language.

The test reads the code itself: every error raised with a message a caller can cause (the
store's errors, a period's or a plan's, the web layer's refusals) is found in the source,
given sample values, and said to a Russian reader the way the server says it; none may
reach them in English. Then a Russian and an English user are refused over HTTP, as JSON
and as a page.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import callpop
from callpop import kpi
from callpop.kpi_motivation import MESSAGES
from callpop.server.error_text import FIELD_LABELS, MESSAGE_IDS, human_message, refusal_text, text_for_people
from callpop.server.errors import Refusal
from callpop.server.i18n import LOCALE_DIR
from callpop.server.kpi.audit_view import ENTITY_LABELS, VALUE_WORDS
from callpop.settings import Settings
from callpop.store.db import Database
from callpop.store.kpi.drill import COLUMN_LABELS, VALUE_LABELS
from tests.support.kpi_rows import Site, employee, serve

SOURCE = Path(callpop.__file__).parent
CYRILLIC = re.compile("[а-яё]", re.I)
# errors whose message reaches a person through the API or a page
FIELD_FIRST = {"ValidationError", "Conflict"}
WHOLE = {"Forbidden", "PeriodError", "PlanError"}
REDIRECTS = {"HTTPFound", "HTTPSeeOther", "HTTPMovedPermanently", "HTTPTemporaryRedirect", "HTTPNotModified"}


def _sample(node: ast.expr) -> str | None:
    """The text of a literal or an f-string, placeholders filled with sample values."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            else:
                assert isinstance(value, ast.FormattedValue)
                parts.append("'x'" if value.conversion == ord("r") else "7")
        return "".join(parts)
    if isinstance(node, ast.Name):
        return "7"  # a field name in a variable
    return None


@dataclass(frozen=True)
class Raised:
    where: str
    kind: str
    field: str | None
    message: str
    params: tuple[str, ...] = ()


def _raised() -> Iterator[Raised]:
    for path in sorted(SOURCE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            where = f"{path.relative_to(SOURCE)}:{node.lineno}"
            if name in FIELD_FIRST and len(node.args) == 2:
                field, message = _sample(node.args[0]), _sample(node.args[1])
                assert message is not None, where
                yield Raised(where, name, field, message)
            elif name in WHOLE and node.args:
                message = _sample(node.args[0])
                assert message is not None, where
                yield Raised(where, name, None, message)
            elif name == "NotFound" and node.args:
                yield Raised(where, name, None, f"{_sample(node.args[0])} 7 not found")
            elif name == "bad_request" and node.args and isinstance(node.args[0], ast.Call) and node.args[0].args:
                message = _sample(node.args[0].args[0])
                if message is not None:  # bad_request(exc): a PeriodError or PlanError, walked above
                    yield Raised(where, name, None, message)
            elif name == "Refusal" and len(node.args) >= 2:
                if isinstance(node.args[1], ast.Name) and where.startswith("server/kpi/view.py"):
                    continue  # bad_request's own: its messages are walked where it is called
                message = _sample(node.args[1])
                assert isinstance(node.args[1], ast.Constant) and message is not None, f"{where}: a message id"
                yield Raised(where, name, None, message, tuple(k.arg for k in node.keywords if k.arg not in
                                                               ("field", "headers", None)))


def _catalog(lang: str) -> dict[str, str]:
    from babel.messages.pofile import read_po

    with (LOCALE_DIR / lang / "LC_MESSAGES" / "callpop.po").open("rb") as fp:
        return {m.id: m.string for m in read_po(fp) if m.id and isinstance(m.id, str)}


def _said_in_russian(raised: Raised) -> str:
    if raised.kind == "Refusal":
        return refusal_text(Refusal(400, raised.message, **{p: "7" for p in raised.params}), "ru")
    if raised.kind in FIELD_FIRST:
        return human_message(raised.field, raised.message, "ru")
    return text_for_people(raised.message, "ru")


def test_the_walk_finds_the_errors_people_can_cause() -> None:
    found = list(_raised())
    kinds = {r.kind for r in found}
    assert {"ValidationError", "Conflict", "Forbidden", "NotFound", "PeriodError", "PlanError", "Refusal",
            "bad_request"} <= kinds
    assert len(found) > 60


@pytest.mark.parametrize("raised", list(_raised()), ids=lambda r: r.where)
def test_every_error_reaches_a_russian_reader_in_russian(raised: Raised) -> None:
    said = _said_in_russian(raised)
    problem = raised.message.split(": ", 1)[-1] if raised.kind != "Refusal" else raised.message
    assert CYRILLIC.search(said), f"{raised.where}: {raised.message!r} -> {said!r}"
    assert problem % {p: "7" for p in raised.params} not in said, f"{raised.where}: left in English: {said!r}"


def test_labels_and_texts_made_in_python_have_russian() -> None:
    ru = _catalog("ru")
    texts = [*MESSAGE_IDS, *MESSAGES, *FIELD_LABELS.values(), *kpi.KPI_LABELS.values(), *ENTITY_LABELS.values(),
             *VALUE_WORDS,
             *kpi.PERIOD_LABELS.values(), *COLUMN_LABELS.values(), *VALUE_LABELS.values()]
    assert [t for t in texts if not ru.get(t)] == []


def test_no_handler_builds_an_http_error_by_hand() -> None:
    """Errors go through ``Refusal`` or a domain error, so nothing skips the translation."""
    hand_made = []
    for path in sorted((SOURCE / "server").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            func = node.func if isinstance(node, ast.Call) else None
            if (isinstance(func, ast.Attribute) and func.attr.startswith("HTTP") and func.attr not in REDIRECTS
                    and isinstance(func.value, ast.Name) and func.value.id == "web"):
                hand_made.append(f"{path.relative_to(SOURCE)}:{node.lineno} web.{func.attr}")
    assert hand_made == []


BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


@pytest.fixture
async def site(db: Database, settings: Settings) -> AsyncIterator[Site]:
    async with db.sessions() as s:
        await employee(s, "Анна", "101", login="anna")
        await employee(s, "Bob", "102", login="bob")
        await s.commit()
    async with serve(db, settings) as site:
        yield site


async def test_refusals_speak_the_users_language_as_json_and_as_a_page(site: Site) -> None:
    anna = await site.login("anna")
    resp = await anna.get("/api/kpi/dashboard")
    body = json.loads(await resp.text())
    assert resp.status == 403
    assert body == {"error": "needs role supervisor or admin", "field": None,
                    "message": "Эта страница — для руководителей"}
    page = await anna.get("/earnings?employee=999", headers=BROWSER)
    assert page.status == 403 and "Менеджер видит только свои показатели" in await page.text()
    forged = await anna.post("/api/promises", json={"client_id": 1, "text": "x"})
    assert forged.status == 403
    assert json.loads(await forged.text())["message"] == "Форма устарела: обновите страницу и попробуйте ещё раз."
    drill = await anna.get("/dashboard/drill?kpi=contacts&page=abc", headers={"Accept": "application/json"})
    assert drill.status == 400
    said = json.loads(await drill.text())
    assert said["field"] == "page" and said["message"] == "Страница: введите целое число от 1 до 100000"

    bob = await site.login("bob")
    token = (await bob.get("/")).headers["X-CSRF-Token"]
    await bob.post("/settings/language", data={"language": "en", "csrf_token": token, "next": "/"})
    body = json.loads(await (await bob.get("/api/kpi/dashboard")).text())
    assert body["message"] == "This page is for supervisors"
    page_text = await (await bob.get("/dashboard/drill?kpi=contacts&page=abc", headers=BROWSER)).text()
    assert "Page: enter a whole number from 1 to 100000" in page_text and "Страница" not in page_text
