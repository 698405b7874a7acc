"""UI translations (Russian and English) with Babel.

Message ids are the English texts. The catalogs are ``callpop/locale/<lang>/LC_MESSAGES/
callpop.po``; they are compiled in memory on first use (no .mo binaries in git), so editing
a .po file and restarting is all a translator does. Templates call ``_("Text")`` or
``_("Hello %(name)s", name=...)``; the desk's scripts get the translations of the texts
they use through ``_.js_messages()`` (embedded in the page as JSON by _config.html).

The language of a page: the employee's choice (``employees.language``, set with POST
/settings/language or PATCH /api/me), else ``[web] default_language``.
"""

from __future__ import annotations

import io
import logging
import re
from functools import cache
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

from callpop.webroot import WEB_ROOT

__all__ = ["JS_DYNAMIC", "LANGUAGES", "LOCALE_DIR", "Translator", "gettext_for", "is_message_id", "js_message_ids"]

log = logging.getLogger(__name__)

LANGUAGES = ("ru", "en")
LOCALE_DIR = Path(__file__).resolve().parents[1] / "locale"
STATIC_DIR = WEB_ROOT / "static"
_JS_CALL = re.compile(r"""\bt\(\s*"((?:[^"\\]|\\.)*)"\s*[,)]""")
# Texts the scripts translate through a variable (status names, connection states).
JS_DYNAMIC = ("open", "kept", "broken", "cancelled", "won", "lost", "Connected", "Connecting…", "Disconnected")


@cache
def _translations(lang: str) -> Translations:
    path = LOCALE_DIR / lang / "LC_MESSAGES" / "callpop.po"
    if not path.exists():
        log.warning("no catalog for language %r at %s: showing English", lang, path)
        return Translations()
    with path.open("rb") as fp:
        catalog = read_po(fp, locale=lang)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer)


@cache
def _message_ids() -> frozenset[str]:
    """The message ids of the catalogs (the Russian one is complete: a test sees to it)."""
    path = LOCALE_DIR / "ru" / "LC_MESSAGES" / "callpop.po"
    if not path.exists():
        return frozenset()
    with path.open("rb") as fp:
        return frozenset(m.id for m in read_po(fp, locale="ru") if m.id and isinstance(m.id, str))


def is_message_id(text: str) -> bool:
    """True when *text* is a whole message of the catalogs (translated as it is)."""
    return text in _message_ids()


@cache
def js_message_ids() -> tuple[str, ...]:
    """Every literal ``t("...")`` of the scripts, plus the dynamic ones."""
    found: set[str] = set(JS_DYNAMIC)
    for path in sorted(STATIC_DIR.glob("*.js")):
        for match in _JS_CALL.finditer(path.read_text(encoding="utf-8")):
            found.add(match.group(1).encode().decode("unicode_escape") if "\\" in match.group(1)
                      else match.group(1))
    return tuple(sorted(found))


class Translator:
    """``_`` of the templates: ``_("Text", name=value)`` translates then fills %(name)s."""

    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in LANGUAGES else LANGUAGES[0]
        self._t = _translations(self.lang)

    def __call__(self, text: str, **params: Any) -> str:
        translated: str = self._t.gettext(text)
        return translated % params if params else translated

    def js_messages(self) -> dict[str, str]:
        return {msg: self._t.gettext(msg) for msg in js_message_ids()}


@cache
def gettext_for(lang: str) -> Translator:
    """The translator for *lang* (cached: catalogs are read once per process)."""
    return Translator(lang)
