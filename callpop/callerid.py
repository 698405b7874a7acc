"""What a phone may be told about a caller: a name safe for ``CALLERID(name)``.

The name comes from the CRM (typed by people, imported from spreadsheets) and goes into
the PBX's dialplan and from there into SIP headers and phone displays. Quotes, ``<>``
and backslashes would break the ``"name" <number>`` form Asterisk parses; line breaks and
other control characters would break the header; many desk phones show only ASCII. So:
control characters and those punctuation marks go, runs of white space become one space,
the length is bounded, and optionally letters are transliterated to ASCII. Pure text in,
text out.
"""

from __future__ import annotations

import unicodedata

__all__ = ["safe_caller_name", "to_ascii"]

_DROP = frozenset('"\\<>`')
# Russian (and the other Cyrillic letters the company's clients write their names in) to
# Latin, close to the passport (ICAO 9303) rules a Russian reader expects.
_CYRILLIC = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh", "з": "z", "и": "i",
    "й": "i", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r", "с": "s", "т": "t",
    "у": "u", "ф": "f", "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh", "щ": "shch", "ъ": "ie", "ы": "y",
    "ь": "", "э": "e", "ю": "iu", "я": "ia", "і": "i", "ї": "i", "є": "ie", "ґ": "g", "ў": "u",
}


def _letter(ch: str) -> str:
    low = ch.lower()
    if low in _CYRILLIC:
        latin = _CYRILLIC[low]
        return latin.capitalize() if ch != low else latin
    decomposed = unicodedata.normalize("NFKD", ch)
    return "".join(c for c in decomposed if c.isascii())


def to_ascii(text: str) -> str:
    """``Иван Пётр Müller`` -> ``Ivan Petr Muller``; what has no ASCII form is dropped."""
    return "".join(ch if ch.isascii() else _letter(ch) for ch in text)


def safe_caller_name(name: str | None, max_length: int, *, ascii_only: bool = False) -> str:
    """*name* as a phone may show it; "" when nothing printable is left."""
    if not name:
        return ""
    kept = []
    for ch in name:
        category = unicodedata.category(ch)
        if category.startswith(("C", "Z")):  # control, format, unassigned; every kind of space
            kept.append(" ")
        elif ch not in _DROP:
            kept.append(ch)
    text = " ".join("".join(kept).split())
    if ascii_only:
        text = " ".join(to_ascii(text).split())
    return text[:max_length].rstrip()
