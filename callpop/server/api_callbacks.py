"""The desk's list of missed calls to return (``GET /api/callbacks``) and its "done"
button (``POST /api/callbacks/{call_id}/done``); the rules are in ``store.callbacks``."""

from __future__ import annotations

from aiohttp import web

from callpop.server.api_base import actor_of, json_response, path_id, session_for, translate_errors
from callpop.server.keys import SETTINGS
from callpop.store import callbacks

__all__ = ["LIST_DOC", "callback_done", "list_callbacks"]

LIST_DOC = {"type": "object", "description": "items: call_id, started_at, number, display, client_id, "
             "client_name, company; newest first, at most 50, the last 7 days"}


@translate_errors
async def list_callbacks(request: web.Request) -> web.StreamResponse:
    actor = actor_of(request)
    async with session_for(request) as s:
        items = await callbacks.missed_calls_to_return(s, actor.id,
                                                       region=request.app[SETTINGS].phones.default_region)
    return json_response({"items": [i.to_json() for i in items], "total": len(items)})


@translate_errors
async def callback_done(request: web.Request) -> web.StreamResponse:
    actor = actor_of(request)
    call_id = path_id(request, "call_id")
    async with session_for(request) as s:
        await callbacks.mark_done(s, call_id, actor.id)
    return web.Response(status=204)

