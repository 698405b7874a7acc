"""Numbers, money, percentages, talk time and dates as the user's language writes them.

Babel's CLDR data does the work: ``12 000,00 ₽`` and ``9,11 %`` in Russian, ``12,000.00 RUB``
and ``9.11%`` in English; months by name ("март 2026"). Pages get a :class:`Formats` for
the page's language as ``f`` (``{{ f.money(x) }}``); the CSV export and the dashboard table
use the same one, so a figure reads the same everywhere.

Date fields are text fields in the user's format (``31.03.2026``, placeholder
``дд.мм.гггг``), not the browser's date picker: Chromium draws that in the browser's own
locale, whatever the page's language, so a Russian manager on an English browser would read
03/31/2026. ISO (``2026-03-31``) is accepted everywhere too: links and the API use it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from functools import cache

from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal

__all__ = ["DATE_INPUT", "Formats", "date_example", "formats_for", "parse_input_date", "talk_time"]

DASH = "—"
# per language: how a date field shows a date (strftime), its placeholder, and for scripts the
# same pattern in the tokens they understand (dd, mm, yyyy)
DATE_INPUT: dict[str, tuple[str, str, str]] = {
    "ru": ("%d.%m.%Y", "дд.мм.гггг", "dd.mm.yyyy"),
    "en": ("%Y-%m-%d", "yyyy-mm-dd", "yyyy-mm-dd"),
}
_EXAMPLE = dt.date(2026, 3, 31)


def date_example(lang: str) -> str:
    """A date as *lang*'s date fields want it, for error messages: "31.03.2026"."""
    return _EXAMPLE.strftime(DATE_INPUT.get(lang, DATE_INPUT["en"])[0])


def parse_input_date(text: str, lang: str) -> dt.date:
    """A date typed in a date field: the language's format or ISO (ValueError if neither)."""
    value = text.strip()
    for pattern in (DATE_INPUT.get(lang, DATE_INPUT["en"])[0], "%Y-%m-%d"):
        try:
            return dt.datetime.strptime(value, pattern).date()
        except ValueError:
            continue
    raise ValueError(f"not a date: {value[:20]!r}")


def talk_time(seconds: float | int | None) -> str:
    """Talk time as m:ss (h:mm:ss from an hour): "4:05", "1:02:07"."""
    if seconds is None:
        return DASH
    total = max(0, round(float(seconds)))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


@dataclass(frozen=True, slots=True)
class Formats:
    lang: str

    def number(self, value: float | int | None, unit: str = "") -> str:
        """Up to two decimals, grouped: "1 234,5" / "1,234.5"; a unit "%" becomes a percentage."""
        if value is None:
            return DASH
        if unit == "%":
            return self.percent(value)
        text = format_decimal(value, format="#,##0.##", locale=self.lang)
        return f"{text}\u00a0{unit}" if unit else text

    def percent(self, value: float | None) -> str:
        """*value* is already in percent (9.11 → "9,11 %")."""
        if value is None:
            return DASH
        text = format_decimal(value, format="#,##0.##", locale=self.lang)
        return f"{text}\u00a0%" if self.lang == "ru" else f"{text}%"

    def money(self, value: float | None, currency: str = "RUB") -> str:
        if value is None:
            return DASH
        if self.lang == "ru":
            return format_currency(value, currency, locale="ru")
        return f"{format_decimal(value, format='#,##0.00', locale=self.lang)}\u00a0{currency}"

    def amount(self, value: float | Decimal | None) -> str:
        """An amount without its currency, always with kopecks: "1 500,50" / "1,500.50"."""
        if value is None:
            return DASH
        return format_decimal(value, format="#,##0.00", locale=self.lang)

    def whole(self, value: float | None) -> str:
        """A plan or count shown whole: pro-rated plans are rounded, not 3.33 contacts."""
        if value is None:
            return DASH
        return format_decimal(round(value), format="#,##0", locale=self.lang)

    def input_date(self, day: dt.date) -> str:
        """A date as a date field shows it: "31.03.2026" / "2026-03-31"."""
        return day.strftime(DATE_INPUT[self.lang][0])

    @property
    def date_placeholder(self) -> str:
        return DATE_INPUT[self.lang][1]

    @property
    def date_input(self) -> dict[str, str]:
        """What the scripts' date fields need: the pattern (dd, mm, yyyy) and the placeholder."""
        return {"pattern": DATE_INPUT[self.lang][2], "placeholder": DATE_INPUT[self.lang][1]}

    def month(self, day: dt.date) -> str:
        return format_date(day, "LLLL yyyy", locale=self.lang)

    def day(self, day: dt.date) -> str:
        return format_date(day, "medium", locale=self.lang)

    def short_day(self, day: dt.date) -> str:
        return format_date(day, "dd.MM" if self.lang == "ru" else "MMM d", locale=self.lang)

    def moment(self, when: dt.datetime) -> str:
        return format_datetime(when, "short", locale=self.lang)


@cache
def formats_for(lang: str) -> Formats:
    return Formats(lang if lang in ("ru", "en") else "en")
