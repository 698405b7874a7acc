"""docs/dialplan.md's plain-Asterisk snippet, run against the app: the URLs its CURL()
calls build (with the dialplan's variables filled in as Asterisk would) must give the
name and the route the snippet then uses; and the name, whatever its characters, must
reach CALLERID(name) whole when the snippet runs as Asterisk would run it."""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

import aiohttp
import pytest
from yarl import URL

from callpop.callerid import safe_caller_name
from callpop.server.keys import EXTRA
from callpop.settings import DialplanSettings, Settings
from callpop.store.db import Database
from tests.support.dialplan_model import Channel, run_until
from tests.support.live import Recorder, StartLive, add_client, add_employee
from tests.support.paths import ROOT

DOC = ROOT / "docs" / "dialplan.md"
NUMBER = "+79161234567"
LINKEDID = "1733212345.17"


def _snippet() -> str:
    """The first fenced block (any language) that defines the [callpop-in] context."""
    blocks: list[list[str]] = []
    inside = False
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            inside = not inside
            if inside:
                blocks.append([])
        elif inside:
            blocks[-1].append(line)
    return next("\n".join(b) for b in blocks if "[callpop-in]" in b)


def _curl_args(line: str) -> list[str]:
    """The argument of every ${CURL(...)} in *line*, parentheses balanced."""
    out = []
    for start in (m.end() for m in re.finditer(r"\$\{CURL\(", line)):
        depth, i = 1, start
        while depth:
            depth += {"(": 1, ")": -1}.get(line[i], 0)
            i += 1
        out.append(line[start:i - 1])
    return out


def _expand(text: str, variables: dict[str, str]) -> str:
    """Asterisk's substitution for the expressions the snippet uses; anything else left
    unexpanded fails the test (the doc would use something this test does not know)."""
    for expr, value in variables.items():
        text = text.replace(expr, value)
    assert "${" not in text, f"unexpanded dialplan expression in {text!r}"
    return text


def _hashcompat(body: str) -> dict[str, str]:
    """func_curl's hashcompat: split on &, then on the first =, URI-decode both."""
    pairs = (piece.partition("=") for piece in body.strip().split("&"))
    return {unquote(k): unquote(v) for k, _, v in pairs}


@pytest.mark.parametrize("port", ["web", "listen"])
async def test_the_documented_dialplan_gets_the_name_and_the_route(db_settings: Settings, db: Database,
                                                                   start_live: StartLive, port: str) -> None:
    """``CALLPOP`` pointing at the web port, or at ``[dialplan] listen``'s port."""
    snippet = _snippet()
    globals_ = dict(re.findall(r"^(CALLPOP\w*)=(\S+)$", snippet, flags=re.M))
    settings = db_settings.replace(dialplan=DialplanSettings(token=globals_["CALLPOP_TOKEN"], timeout=5.0,
                                                             listen="127.0.0.1:0" if port == "listen" else ""),
                                   agents={"PJSIP/101": "101"})
    rec = Recorder()
    live = await start_live(settings, store=rec.hooks())
    try:
        anna = await add_employee(db, "anna", ["101"])
        await add_client(db, 'ООО "Ромашка"', NUMBER, responsible_id=anna)
        tab = await live.tab("anna")
        await tab.start()
        variables = {
            "${CALLPOP}": (str(live.server.make_url("")).rstrip("/") if port == "web"
                           else f"http://127.0.0.1:{live.app[EXTRA]['dialplan_listener'].port}"),
            "${CALLPOP_TOKEN}": globals_["CALLPOP_TOKEN"],
            "${URIENCODE(${CALLERID(num)})}": quote("89161234567", safe=""),
            "${CHANNEL(linkedid)}": LINKEDID,
        }
        urls = [_expand(arg, variables) for line in snippet.splitlines() for arg in _curl_args(line)]
        assert [u.split("?")[0].rsplit("/", 1)[1] for u in urls] == ["caller-name", "route"]
        http = aiohttp.ClientSession()  # a plain client with the absolute URL, as curl would
        answers = [await (await http.get(URL(u, encoded=True))).text() for u in urls]
        assert answers[0] == "ООО Ромашка"
        route = _hashcompat(answers[1])
        assert route == {"dial": "PJSIP/101", "regular": "1"}
        assert "${HASH(callpop,dial)}" in snippet and "${HASH(callpop,regular)}" in snippet
        assert rec.lookups == [NUMBER]  # the card the pop will show is already being read
        # a wrong token in the doc's URLs would be refused: the test would fail above
        refused = await http.get(URL(urls[0].replace(globals_["CALLPOP_TOKEN"], "wrong"), encoded=True))
        assert (refused.status, await refused.text()) == (403, "")
        await http.close()
    finally:
        await live.close()


def _name_lines(name: str) -> Channel:
    """The snippet run up to its route question, with callpop answering *name*."""
    def curl(url: str) -> str:
        assert "/pbx/caller-name?" in url, url
        return name

    channel = Channel({"CALLPOP": "http://192.0.2.10:8080", "CALLPOP_TOKEN": "change-me",
                       "CALLERID(num)": "89161234567", "CALLERID(name)": "CARRIER NAME",
                       "CHANNEL(linkedid)": LINKEDID}, curl)
    return run_until(_snippet(), channel, stop="/pbx/route")


@pytest.mark.parametrize("name", [
    "Ромашка) Ltd: Москва",       # a ")" closes ExecIf's parentheses early, then ":" splits
    "ИП Иванов (склад: 2",
    "Who? Me: ok, thanks",
    "[x]: y) z",
    "Иван Петров",
])
def test_the_documented_dialplan_sets_any_name_callpop_answers_whole(name: str) -> None:
    assert safe_caller_name(name, 40) == name  # callpop answers it as it is
    assert _name_lines(name).values["CALLERID(name)"] == name


def test_an_empty_answer_keeps_the_name_the_carrier_sent() -> None:
    assert _name_lines("").values["CALLERID(name)"] == "CARRIER NAME"
