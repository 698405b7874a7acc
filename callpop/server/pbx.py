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
from collections.abc import Sequence
from urllib.parse import quote

from aiohttp import web

from callpop.callerid import safe_caller_name
from callpop.dialing import device_for, pbx_of
from callpop.phones import PhoneKey, phone_key
from callpop.server.keys import DB, EXTRA, HUB, SETTINGS, TRACKER
from callpop.server.pbx_prefetch import PREFETCH_PACER
from callpop.server.peers import peer_allowed
from callpop.settings import DialplanSettings
from callpop.store.caller import CallerMatch, caller_matches
from callpop.store.caller_cache import AnswerCache
from callpop.store.caller_index import IndexKeeper
from callpop.telephony.events import Arrival

__all__ = ["caller_name", "route"]

log = logging.getLogger(__name__)

_CACHE = "pbx_answers"
_INDEX = "caller_index"
_ABANDONED = "pbx_reads_past_budget"
# Reads past the budget still running (a database that stopped answering): beyond this
# many, questions are answered empty at once ("busy") instead of adding reads behind them.
IN_FLIGHT_MAX = 8
_CACHE_MAX = 10_000
Matches = tuple[CallerMatch, ...]


def _text(body: str, status: str, code: int = 200) -> web.Response:
    return web.Response(text=body, status=code, content_type="text/plain", charset="utf-8",
                        headers={"X-Callpop-Status": status, "Cache-Control": "no-store"})


def _allowed(request: web.Request, settings: DialplanSettings) -> bool:
    """The PBX's address is in ``allow`` (when it is set) and the token matches (when set)."""
    if not settings.allow and not settings.token:
        return False
    if settings.allow and not peer_allowed(request, settings.allow):
        return False
    if settings.token:
        return hmac.compare_digest(request.query.get("token", "").encode(), settings.token.encode())
    return True


def _cache(request: web.Request) -> AnswerCache[Matches]:
    cache: AnswerCache[Matches] | None = request.app[EXTRA].get(_CACHE)
    if cache is None:
        settings = request.app[SETTINGS].dialplan
        cache = request.app[EXTRA][_CACHE] = AnswerCache(request.app[DB].engine, _CACHE_MAX,
                                                         settings.cache_seconds)
    return cache


async def _matches(request: web.Request, key: PhoneKey) -> Matches:
    """The clients with this number: from the directory in memory while nothing has
    changed since it was read (store/caller_index.py), from the answer cache (the route
    asked right after the name; emptied by any write that could change it), else one
    statement under the hard budget."""
    index: IndexKeeper | None = request.app[EXTRA].get(_INDEX)
    if index is not None:
        remembered = index.lookup(key)
        if remembered is not None:
            return remembered
    cache = _cache(request)
    found = cache.get(key.display_key)
    if found is not None:
        return found
    generation = cache.generation()
    abandoned: set[asyncio.Task[Matches]] = request.app[EXTRA].setdefault(_ABANDONED, set())
    if len(abandoned) >= IN_FLIGHT_MAX:
        raise _Busy
    lookup = asyncio.ensure_future(caller_matches(request.app[DB], key))
    try:
        async with asyncio.timeout(request.app[SETTINGS].dialplan.timeout):
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


def _prefetch(request: web.Request, key: PhoneKey | None, last: bool) -> None:
    """Ask for the card lookup of the call the dialplan is routing (``call`` = its
    linkedid, the id the tracker gives the call), as the tracker's arrival hint would;
    it starts once the questions are answered (server/pbx_prefetch.py)."""
    call = request.query.get("call", "").strip()
    pacer = request.app.get(PREFETCH_PACER)
    if key is None or not key.external or not (key.e164 or key.tail10):
        return
    if call and pacer is not None and len(call) <= 64:
        pacer.asked(Arrival(call, key.display_key), last=last)


async def _send(request: web.Request, response: web.Response, key: PhoneKey | None,
                last: bool = False) -> web.Response:
    """Answer first, then ask for the card's lookup: the PBX has its bytes before the
    lookup competes with anything for the CPU. *last*: the route, the dialplan's last
    question about the call."""
    await response.prepare(request)
    await response.write_eof()
    _prefetch(request, key, last)
    return response


def _question(request: web.Request) -> contextlib.AbstractContextManager[None]:
    """While a question is answered, no card lookup the dialplan asked for starts."""
    pacer = request.app.get(PREFETCH_PACER)
    return pacer.question() if pacer is not None else contextlib.nullcontext()


async def _answer(request: web.Request) -> tuple[PhoneKey | None, Matches, str]:
    """The number's key, its clients and a status word; never raises."""
    settings = request.app[SETTINGS]
    number = request.query.get("number", "")
    if not number or len(number) > 64:
        log.warning("pbx: %s without a usable number=...: check the dialplan's URL", request.path)
        return None, (), "bad-request"
    key = phone_key(number, settings.phones.default_region, settings.phones.min_external_digits)
    if not key.external or not (key.e164 or key.tail10):
        return key, (), "not-looked-up"
    try:
        found = await _matches(request, key)
    except TimeoutError:
        log.warning("pbx: lookup of %s took over %g s; answered empty", key.display_key, settings.dialplan.timeout)
        return key, (), "timeout"
    except _Busy:
        log.warning("pbx: %d lookups still running past the budget; %s answered empty without one",
                    IN_FLIGHT_MAX, key.display_key)
        return key, (), "busy"
    except Exception:
        log.exception("pbx: lookup of %s failed; answered empty", key.display_key)
        return key, (), "error"
    if not found:
        return key, (), "unknown"
    return key, found, "ok" if len(found) == 1 else "ambiguous"


async def caller_name(request: web.Request) -> web.StreamResponse:
    """``CALLERID(name)`` for the number: one client's name, else empty."""
    with _question(request):
        return await _caller_name(request)


async def _caller_name(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS].dialplan
    if not _allowed(request, settings):
        return _text("", "forbidden", 403)
    key, found, status = await _answer(request)
    if len(found) != 1:
        return await _send(request, _text("", status), key)
    name = safe_caller_name(found[0].name, settings.name_max_length, ascii_only=settings.transliterate)
    return await _send(request, _text(name, status), key)


def _talking(request: web.Request) -> set[str]:
    tracker = request.app[EXTRA].get("calls") or request.app.get(TRACKER)  # every PBX's calls
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


async def route(request: web.Request) -> web.StreamResponse:
    """``dial=<device>&regular=<1|0>``; ``dial`` is empty when the manager cannot take it."""
    with _question(request):
        return await _route(request)


async def _route(request: web.Request) -> web.StreamResponse:
    app_settings = request.app[SETTINGS]
    if not _allowed(request, app_settings.dialplan):
        return _text("", "forbidden", 403)
    key, found, status = await _answer(request)
    match = _responsible(found)
    if match is None:
        return await _send(request, _text("", status), key, last=True)
    regular = "1" if all(m.regular for m in found) else "0"
    hub, talking = request.app[HUB], _talking(request)
    asking = request.query.get("pbx") or app_settings.pbx.id  # a manager on another PBX cannot be dialled
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
    return await _send(request, _text(f"dial={quote(dial, safe='/@:-_.')}&regular={regular}", why), key,
                       last=True)
