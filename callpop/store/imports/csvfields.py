"""Cell values as 1C and spreadsheets write them: ``1 234,56 руб.``, ``05.03.2026 14:30``,
``Выполнено``, ``8 (916) 123-45-67; +7 495 765-43-21``.

Each parser returns the value or raises LineError with a reason that names the column
and quotes what was found, which the importer reports next to the line number.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from callpop.phones import PhoneKey, phone_key
from callpop.store.errors import StoreError

__all__ = [
    "AGREEMENT_STATUSES",
    "CLIENT_STATUSES",
    "PROMISE_STATUSES",
    "LineError",
    "PhoneEntry",
    "parse_amount",
    "parse_currency",
    "parse_moment",
    "parse_status",
    "phone_identity",
    "read_phone",
    "split_phone_cell",
    "text_field",
]


class LineError(StoreError, ValueError):
    """This line cannot be imported; the message is the reason shown to the user."""


AGREEMENT_STATUSES: dict[str, str] = {
    "open": "open", "в работе": "open", "открыт": "open", "открыта": "open", "открыто": "open",
    "новый": "open", "новая": "open", "переговоры": "open", "active": "open",
    "won": "won", "выигран": "won", "выиграна": "won", "успешно": "won", "заключен": "won",
    "заключена": "won", "подписан": "won", "выполнен": "won", "оплачен": "won", "closed won": "won",
    "lost": "lost", "проигран": "lost", "проиграна": "lost", "отказ": "lost", "неуспешно": "lost",
    "closed lost": "lost",
    "cancelled": "cancelled", "canceled": "cancelled", "отменен": "cancelled", "отменена": "cancelled",
    "аннулирован": "cancelled", "расторгнут": "cancelled",
}
PROMISE_STATUSES: dict[str, str] = {
    "open": "open", "открыто": "open", "открыт": "open", "в работе": "open", "ожидает": "open",
    "kept": "kept", "done": "kept", "выполнено": "kept", "выполнен": "kept", "исполнено": "kept",
    "broken": "broken", "missed": "broken", "нарушено": "broken", "не выполнено": "broken",
    "просрочено": "broken", "сорвано": "broken",
    "cancelled": "cancelled", "canceled": "cancelled", "отменено": "cancelled", "отменен": "cancelled",
}
CLIENT_STATUSES: dict[str, str] = {
    "new": "new", "новый": "new", "regular": "regular", "постоянный": "regular", "постоянная": "regular",
}

_PHONE_SPLIT = re.compile(r"[,;/\n\r]+")
_AMOUNT_NOISE = re.compile(r"(?i)\s|\u00a0|\u202f|руб\.?|р\.|₽|rub|коп\.?")
_CURRENCIES = {"rub": "RUB", "руб": "RUB", "руб.": "RUB", "р.": "RUB", "₽": "RUB", "rur": "RUB",
               "usd": "USD", "$": "USD", "eur": "EUR", "€": "EUR", "долл": "USD", "евро": "EUR"}
_DMY = re.compile(r"(\d{1,2})[./](\d{1,2})[./](\d{4}|\d{2})")
_YMD = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")
_HMS = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?(?:\.\d+)?")


_MULTILINE = frozenset({"terms", "text"})  # free text keeps its line breaks


def text_field(values: dict[str, str], name: str, *, limit: int, required: bool = False) -> str | None:
    """A text cell, trimmed (runs of spaces collapsed, except in free text); None when
    empty; LineError when required and empty, or too long for its column."""
    raw = values.get(name, "")
    value = raw.strip() if name in _MULTILINE else " ".join(raw.split())
    if not value:
        if required:
            raise LineError(f"empty {name}")
        return None
    if len(value) > limit:
        raise LineError(f"{name} is longer than {limit} characters ({len(value)})")
    return value


def parse_amount(text: str, name: str = "amount") -> Decimal:
    """``1 234,56`` / ``1234.56`` / ``1,234.56`` / ``1 234 руб.``: the last of ``.`` and ``,``
    is the decimal mark when both appear; a lone ``,`` is the Russian decimal comma."""
    cleaned = _AMOUNT_NOISE.sub("", text)
    if "," in cleaned and "." in cleaned:
        if cleaned.rfind(",") > cleaned.rfind("."):
            cleaned = cleaned.replace(".", "").replace(",", ".")
        else:
            cleaned = cleaned.replace(",", "")
    else:
        cleaned = cleaned.replace(",", ".")
    try:
        amount = Decimal(cleaned)
    except InvalidOperation:
        raise LineError(f"{name} {text!r} is not a number") from None
    if not amount.is_finite():
        raise LineError(f"{name} {text!r} is not a number")
    if amount < 0:
        raise LineError(f"{name} {text!r} is negative")
    if amount >= Decimal("1e12"):
        raise LineError(f"{name} {text!r} is too large")
    return amount.quantize(Decimal("0.01"))


def parse_currency(text: str | None) -> str:
    if not text:
        return "RUB"
    key = text.strip().casefold()
    if key in _CURRENCIES:
        return _CURRENCIES[key]
    if re.fullmatch(r"[a-z]{3}", key):
        return key.upper()
    raise LineError(f"currency {text!r} is not a 3-letter code like RUB")


def parse_status(text: str | None, table: dict[str, str], name: str, default: str) -> str:
    if not text:
        return default
    key = " ".join(text.casefold().replace("ё", "е").split())
    if key in table:
        return table[key]
    known = ", ".join(sorted(set(table.values())))
    raise LineError(f"{name} {text!r} is not one of {known}")


def _day(text: str) -> dt.date | None:
    match = _DMY.fullmatch(text)
    if match:
        day, month, year = (int(g) for g in match.groups())
        year += 2000 if year < 100 else 0
    elif match := _YMD.fullmatch(text):
        year, month, day = (int(g) for g in match.groups())
    else:
        return None
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def parse_moment(text: str, name: str, zone: ZoneInfo, *, end_of_day: bool = False) -> dt.datetime:
    """A date or date and time, in the company's time zone unless it carries an offset;
    returned in UTC. A date alone means the start of that day, or its end (23:59:59) for
    deadlines, so a promise due today is not overdue in the morning."""
    date_part, _, time_part = " ".join(text.split()).partition(" ")
    day = _day(date_part)
    if day is None or (time_part and not _HMS.fullmatch(time_part)):  # ISO 8601, maybe with an offset
        try:
            parsed = dt.datetime.fromisoformat(text.strip())
        except ValueError:
            parsed = None
        if parsed is not None:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=zone)
            if not 1990 <= parsed.year <= 2100:
                raise LineError(f"{name} {text!r} is out of range")
            return parsed.astimezone(dt.UTC)
    if day is None:
        raise LineError(f"{name} {text!r} is not a date like 31.12.2026 or 2026-12-31")
    if not 1990 <= day.year <= 2100:
        raise LineError(f"{name} {text!r} is out of range")
    if not time_part:
        clock = dt.time(23, 59, 59) if end_of_day else dt.time(0, 0)
    else:
        match = _HMS.fullmatch(time_part)
        hour, minute, second = (int(g or 0) for g in match.groups()) if match else (99, 0, 0)
        if hour > 23 or minute > 59 or second > 59:
            raise LineError(f"{name} {text!r} has a time that is not like 14:30")
        clock = dt.time(hour, minute, second)
    return dt.datetime.combine(day, clock, tzinfo=zone).astimezone(dt.UTC)


def split_phone_cell(cell: str) -> list[str]:
    """The pieces of a phone cell (``,`` ``;`` ``/`` or line breaks between numbers), spaces
    collapsed, repeats dropped; cheap, so a re-import compares raw text before parsing."""
    pieces: list[str] = []
    for piece in _PHONE_SPLIT.split(cell):
        raw = " ".join(piece.split())[:64]
        if raw and raw not in pieces:
            pieces.append(raw)
    return pieces


@dataclass(frozen=True, slots=True)
class PhoneEntry:
    """One number of a phone cell: the text as entered, the label written around it
    (``моб.``, ``(офис)``, ``доб. 123``) and the normalised key of the number itself."""

    raw: str
    label: str | None
    key: PhoneKey

    @property
    def identity(self) -> str:
        return phone_identity(self.key)


_NUMBER_IN_TEXT = re.compile(r"^\s*([^\d+(]*?)[\s:]*([+(]?\d[\d\s()\-.]*\d)\s*(.*)$")


def read_phone(piece: str, region: str, min_digits: int) -> PhoneEntry:
    """``моб. +7 916 123-45-67`` / ``8 (495) 123-45-67 (офис)`` / ``8 495 123-45-67 доб. 12``:
    the number is normalised and the words around it become the label."""
    match = _NUMBER_IN_TEXT.match(piece)
    if match is None:
        return PhoneEntry(piece, None, phone_key(piece, region, min_digits))
    before, number, after = match.groups()
    label = " ".join(part for part in (before.strip(" :-"), after.strip(" ()")) if part) or None
    return PhoneEntry(piece, label[:50] if label else None, phone_key(number, region, min_digits))


def phone_identity(key: PhoneKey) -> str:
    """What makes two stored numbers the same: E.164, else the digits, else the text."""
    return key.e164 or "".join(ch for ch in key.raw if ch.isdigit()) or key.raw
