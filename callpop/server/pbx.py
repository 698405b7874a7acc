"""The PBX asks callpop: plain-text answers for the dialplan's ``CURL()``.

``GET /pbx/caller-name?number=N`` answers the client's name for ``CALLERID(name)``;
``GET /pbx/route?number=N[&pbx=NAME]`` answers ``dial=PJSIP/101&regular=1`` (a line the dialplan
reads with ``HASH()`` under ``CURLOPT(hashcompat)`` or with ``CUT``): the device of the
client's responsible manager when that manager has the desk open and is not in a
conversation, else ``dial=`` so the dialplan falls back to its queue. docs/dialplan.md
has the dialplan.

The caller is waiting while the PBX asks, so every answer fails open: an unknown,
withheld or ambiguous number, a database slower than ``[dialplan] timeout``, a bug —
each is an empty body with status 200 (the reason in the ``X-Callpop-Status`` header and
the log), and the call goes on as if callpop were not there. A request from outside
``[dialplan] allow`` or without the token gets 403 and an empty body, which the dialplan
treats the same way. With ``call=${CHANNEL(linkedid)}`` the question also starts the
lookup of the card the pop will show (the pipeline's early lookup), so the pop that
follows is warm; the lookup waits until the questions are answered
(server/pbx_prefetch.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from aiohttp import web

from callpop.callerid import safe_caller_name
from callpop.dialing import device_for, pbx_of
from callpop.phones import PhoneKey, phone_key
from callpop.server.keys import DB, EXTRA, HUB, SETTINGS, TRACKER
from callpop.server.pbx_prefetch import PREFETCH_PACER
from callpop.server.peers import address_allowed
from callpop.settings import DialplanSettings
from callpop.store.caller import CallerMatch, caller_matches
from callpop.store.caller_cache import AnswerCache
from callpop.store.caller_index import IndexKeeper
from callpop.telephony.events import Arrival

__all__ = ["CALLER_NAME", "ROUTE", "Answer", "answer", "answer_at_once", "caller_name", "route", "sent"]

log = logging.getLogger(__name__)

CALLER_NAME, ROUTE = "/pbx/caller-name", "/pbx/route"
_CACHE = "pbx_answers"
_INDEX = "caller_index"
_ABANDONED = "pbx_reads_past_budget"
# Reads past the budget still running (a database that stopped answering): beyond this
# many, questions are answered empty at once ("busy") instead of adding reads behind them.
IN_FLIGHT_MAX = 8
_CACHE_MAX = 10_000
Matches = tuple[CallerMatch, ...]
Query = Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Answer:
    """One plain-text answer: the body, the status word (``X-Callpop-Status``), the HTTP
    status, and what the card prefetch needs once it is sent."""

    body: str
    status: str
    code: int = 200
    key: PhoneKey | None = None
    last: bool = False  # the route: the dialplan's last question about the call


def _allowed(query: Query, peer: str | None, settings: DialplanSettings) -> bool:
    """The PBX's address is in ``allow`` (when it is set) and the token matches (when set)."""
    if not settings.allow and not settings.token:
        return False
    if settings.allow and not address_allowed(peer, settings.allow):
        return False
    if settings.token:
        return hmac.compare_digest(query.get("token", "").encode(), settings.token.encode())
    return True


def _cache(app: web.Application) -> AnswerCache[Matches]:
    cache: AnswerCache[Matches] | None = app[EXTRA].get(_CACHE)
    if cache is None:
        settings = app[SETTINGS].dialplan
        cache = app[EXTRA][_CACHE] = AnswerCache(app[DB].engine, _CACHE_MAX, settings.cache_seconds)
    return cache


def _remembered(app: web.Application, key: PhoneKey) -> Matches | None:
    """The clients with this number without reading the database: from the directory in
    memory while nothing has changed since it was read (store/caller_index.py), else from
    the answer cache (the route asked right after the name; emptied by any write that
    could change it); None: the database must be read."""
    index: IndexKeeper | None = app[EXTRA].get(_INDEX)
    if index is not None:
        found = index.lookup(key)
        if found is not None:
            return found
    return _cache(app).get(key.display_key)


async def _read(app: web.Application, key: PhoneKey) -> Matches:
    """One statement under the hard budget."""
    cache = _cache(app)
    generation = cache.generation()
    abandoned: set[asyncio.Task[Matches]] = app[EXTRA].setdefault(_ABANDONED, set())
    if len(abandoned) >= IN_FLIGHT_MAX:
        raise _Busy
    lookup = asyncio.ensure_future(caller_matches(app[DB], key))
    try:
        async with asyncio.timeout(app[SETTINGS].dialplan.timeout):
            found = await asyncio.shield(lookup)
    except TimeoutError:
        # the answer goes out now; the read finishes (or fails) on its own and gives its
        # connection back, without the caller waiting for the database to take the cancel
        abandoned.add(lookup)
        lookup.add_done_callback(functools.partial(_finished, abandoned))
        raise
    cache.put(key.display_key, found, generation)
    return found


def _finished(abandoned: set[asyncio.Task[Matches]], task: asyncio.Task[Matches]) -> None:
    abandoned.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.warning("pbx: a lookup answered empty for being late then failed: %s", task.exception())


class _Busy(Exception):
    """Too many reads already past the budget: answer empty at once, do not queue more."""


def sent(app: web.Application, query: Query, answer: Answer) -> None:
    """Once the answer's bytes are out: ask for the card lookup of the call the dialplan
    is routing (``call`` = its linkedid, the id the tracker gives the call), as the
    tracker's arrival hint would; it starts once the questions are answered
    (server/pbx_prefetch.py). The PBX has its bytes before the lookup competes with
    anything for the CPU."""
    key = answer.key
    call = query.get("call", "").strip()
    pacer = app.get(PREFETCH_PACER)
    if key is None or not key.external or not (key.e164 or key.tail10):
        return
    if call and pacer is not None and len(call) <= 64:
        pacer.asked(Arrival(call, key.display_key), last=answer.last)


def question(app: web.Application) -> contextlib.AbstractContextManager[None]:
    """While a question is answered, no card lookup the dialplan asked for starts."""
    pacer = app.get(PREFETCH_PACER)
    return pacer.question() if pacer is not None else contextlib.nullcontext()


def _key(app: web.Application, path: str, query: Query) -> tuple[PhoneKey | None, str | None]:
    """The number's key, or the status word that ends the question without a lookup."""
    settings = app[SETTINGS]
    number = query.get("number", "")
    if not number or len(number) > 64:
        log.warning("pbx: %s without a usable number=...: check the dialplan's URL", path)
        return None, "bad-request"
    key = phone_key(number, settings.phones.default_region, settings.phones.min_external_digits)
    if not key.external or not (key.e164 or key.tail10):
        return key, "not-looked-up"
    return key, None


def _status(found: Matches) -> str:
    return "unknown" if not found else "ok" if len(found) == 1 else "ambiguous"


def answer_at_once(app: web.Application, path: str, query: Query, peer: str | None) -> Answer | None:
    """The answer when it needs no database read (refused, no number, remembered);
    None: ask ``answer``. Never raises: a bug is an empty answer (the caller is waiting)."""
    try:
        return _at_once(app, path, query, peer)
    except Exception:
        log.exception("pbx: answering %s failed; answered empty", path)
        return Answer("", "error", last=path == ROUTE)


def _at_once(app: web.Application, path: str, query: Query, peer: str | None) -> Answer | None:
    settings = app[SETTINGS].dialplan
    if not _allowed(query, peer, settings):
        return Answer("", "forbidden", 403)
    key, final = _key(app, path, query)
    if final is not None:
        return _compose(app, path, query, key, (), final)
    assert key is not None
    try:
        found = _remembered(app, key)
    except Exception:
        log.exception("pbx: lookup of %s failed; answered empty", key.display_key)
        return _compose(app, path, query, key, (), "error")
    if found is None:
        return None
    return _compose(app, path, query, key, found, _status(found))


async def answer(app: web.Application, path: str, query: Query, peer: str | None) -> Answer:
    """The answer to one question (``CALLER_NAME`` or ``ROUTE``); never raises."""
    at_once = answer_at_once(app, path, query, peer)
    if at_once is not None:
        return at_once
    try:
        return await _after_reading(app, path, query)
    except Exception:
        log.exception("pbx: answering %s failed; answered empty", path)
        return Answer("", "error", last=path == ROUTE)


async def _after_reading(app: web.Application, path: str, query: Query) -> Answer:
    key, _final = _key(app, path, query)
    assert key is not None
    settings = app[SETTINGS].dialplan
    try:
        found = await _read(app, key)
    except TimeoutError:
        log.warning("pbx: lookup of %s took over %g s; answered empty", key.display_key, settings.timeout)
        return _compose(app, path, query, key, (), "timeout")
    except _Busy:
        log.warning("pbx: %d lookups still running past the budget; %s answered empty without one",
                    IN_FLIGHT_MAX, key.display_key)
        return _compose(app, path, query, key, (), "busy")
    except Exception:
        log.exception("pbx: lookup of %s failed; answered empty", key.display_key)
        return _compose(app, path, query, key, (), "error")
    return _compose(app, path, query, key, found, _status(found))


def _compose(app: web.Application, path: str, query: Query, key: PhoneKey | None, found: Matches,
             status: str) -> Answer:
    if path == CALLER_NAME:
        return _name(app, key, found, status)
    return _route(app, query, key, found, status)


def _name(app: web.Application, key: PhoneKey | None, found: Matches, status: str) -> Answer:
    """``CALLERID(name)`` for the number: one client's name, else empty."""
    if len(found) != 1:
        return Answer("", status, key=key)
    settings = app[SETTINGS].dialplan
    return Answer(safe_caller_name(found[0].name, settings.name_max_length, ascii_only=settings.transliterate),
                  status, key=key)


def _talking(app: web.Application) -> set[str]:
    tracker = app[EXTRA].get("calls") or app.get(TRACKER)  # every PBX's calls
    if tracker is None:
        return set()
    return {agent for call in tracker.active_calls() for agent in call.talking}


def _responsible(found: Sequence[CallerMatch]) -> CallerMatch | None:
    """The client whose manager the call goes to: the only match, or the first of several
    that share one responsible manager (a number two clients of one manager share)."""
    managers = {m.responsible_id for m in found}
    if len(managers) != 1 or (len(found) > 1 and None in managers):
        return None
    return found[0]


def _route(app: web.Application, query: Query, key: PhoneKey | None, found: Matches, status: str) -> Answer:
    """``dial=<device>&regular=<1|0>``; ``dial`` is empty when the manager cannot take it."""
    match = _responsible(found)
    if match is None:
        return Answer("", status, key=key, last=True)
    app_settings = app[SETTINGS]
    regular = "1" if all(m.regular for m in found) else "0"
    hub, talking = app[HUB], _talking(app)
    asking = query.get("pbx") or app_settings.pbx.id  # a manager on another PBX cannot be dialled
    dial, busy = "", False
    for extension in match.extensions:
        if pbx_of(extension, app_settings)[0] != asking or not hub.watches(extension):
            continue
        if extension in talking:
            busy = True  # at the desk, but in a conversation
            continue
        dial = device_for(extension, app_settings)
        break
    why = "ok" if dial else "manager-busy" if busy else "manager-away" if match.extensions else "no-manager"
    return Answer(f"dial={quote(dial, safe='/@:-_.')}&regular={regular}", why, key=key, last=True)


# --- on the web port ---------------------------------------------------------------------


def _response(answer: Answer) -> web.Response:
    return web.Response(text=answer.body, status=answer.code, content_type="text/plain", charset="utf-8",
                        headers={"X-Callpop-Status": answer.status, "Cache-Control": "no-store"})


async def _ask(request: web.Request, path: str) -> web.StreamResponse:
    app = request.app
    with question(app):
        reply = await answer(app, path, request.query, request.remote)
        response = _response(reply)
        await response.prepare(request)
        await response.write_eof()
        sent(app, request.query, reply)
    return response


async def caller_name(request: web.Request) -> web.StreamResponse:
    """``GET /pbx/caller-name?number=N``."""
    return await _ask(request, CALLER_NAME)


async def route(request: web.Request) -> web.StreamResponse:
    """``GET /pbx/route?number=N[&pbx=NAME]``."""
    return await _ask(request, ROUTE)
