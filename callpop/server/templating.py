"""Jinja2 pages: one environment per application, autoescaping on for every HTML template.

Caller ID names, client names and notes reach templates as data; autoescape makes them
text, so ``<img src=x onerror=...>`` in a caller name shows as those characters. Every page
gets ``user``, ``csrf_token`` (forms post it back in a hidden field), ``lang`` and ``_``
(the UI translation for that language) without each handler repeating them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from callpop.server.auth import csrf_token, current_user
from callpop.server.i18n import gettext_for
from callpop.server.keys import SETTINGS
from callpop.server.l10n import formats_for
from callpop.webroot import WEB_ROOT

__all__ = ["TEMPLATES", "WEB_ROOT", "language", "render", "setup_templates"]

log = logging.getLogger(__name__)

TEMPLATES: web.AppKey[jinja2.Environment] = web.AppKey("templates", jinja2.Environment)
LANG_COOKIE = "callpop_lang"
_LANGUAGES = ("ru", "en")


def setup_templates(app: web.Application, directory: Path | None = None) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(directory or WEB_ROOT / "templates")),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "htm", "xml", "j2"),
                                            default_for_string=True, default=True),
        undefined=jinja2.StrictUndefined,
        enable_async=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    app[TEMPLATES] = env
    return env


def language(request: web.Request) -> str:
    """The UI language: the user's choice, then the language cookie, then the default."""
    user = current_user(request)
    if user is not None and user.language in _LANGUAGES:
        return user.language
    cookie = request.cookies.get(LANG_COOKIE)
    if cookie in _LANGUAGES:
        return str(cookie)
    return request.app[SETTINGS].web.default_language


def _translator(lang: str) -> Callable[..., str]:
    """The page's ``_()``: the UI catalogs of *lang*."""
    translate: Callable[..., str] = gettext_for(lang)
    return translate


def render(request: web.Request, name: str, *, status: int = 200, **context: Any) -> web.Response:
    """Render *name* with the common context; the handler adds its own keys."""
    lang = language(request)
    base: dict[str, Any] = {"user": current_user(request), "csrf_token": csrf_token(request),
                            "lang": lang, "_": _translator(lang), "request_path": request.path,
                            "f": formats_for(lang),
                            # where a page goes when its own instance stops answering (failover.js)
                            "instance_urls": list(request.app[SETTINGS].push.instance_urls)}
    html = request.app[TEMPLATES].get_template(name).render({**base, **context})
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8",
                        headers={"X-CSRF-Token": base["csrf_token"], "Cache-Control": "no-store"})
