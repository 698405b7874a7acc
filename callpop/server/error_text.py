"""Error messages for people: a store error said again in the user's language, naming the
field by the label the form shows ("Due date", not ``due_at``).

The store's messages are written for programs and logs (``due_at: year 9999 is out of
range (2000-2100)``) and stay in the API's ``error``; the API adds ``message``, built here,
for the page to show. Messages are matched by their wording; one not listed here is shown
with the field's label and the original text, so nothing is ever hidden.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from callpop.server.i18n import gettext_for

__all__ = ["FIELD_LABELS", "MESSAGE_IDS", "human_message"]

# the labels of the forms that send these fields
FIELD_LABELS: dict[str, str] = {
    "amount": "Amount", "company": "Company", "currency": "Currency", "due_at": "Due",
    "external_id": "External id", "issued_at": "Issued", "label": "Label", "name": "Name",
    "number": "Phone number", "phones": "Phone number", "paid_at": "Paid", "settled_at": "Settled",
    "status": "Status", "terms": "Terms", "text": "Text", "title": "Agreement", "q": "Search",
    "client_id": "Client", "call_id": "Call", "agreement_id": "Agreement", "made_by": "Manager",
    "responsible_id": "Responsible manager", "body": "Request", "language": "Language",
}

# (pattern of the store's wording, message id with the pattern's named groups)
_PROBLEMS: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(p), m) for p, m in (
    (r"^is required$", "fill this in"),
    (r"^year (?P<year>-?\d+) is out of range \((?P<low>\d+)-(?P<high>\d+)\)$",
     "the year %(year)s is not accepted, pick a date between %(low)s and %(high)s"),
    (r"^expected a date-time like .*$", "enter a date and a time"),
    (r"^is too long \((?P<n>\d+) characters, at most (?P<limit>\d+)\)$",
     "too long: %(n)s characters, at most %(limit)s"),
    (r"^contains control characters$", "contains characters that cannot be stored"),
    (r"^expected an amount like .*$", "enter an amount like 1500.50"),
    (r"^expected a finite amount$", "enter an amount like 1500.50"),
    (r"^must not be negative$", "must not be negative"),
    (r"^is too large \(at most (?P<limit>[\d.]+)\)$", "too large (at most %(limit)s)"),
    (r"^has more than 2 decimal places$", "at most 2 digits after the decimal point"),
    (r"^expected a phone number like .*$", "enter a phone number like +7 916 123-45-67"),
    (r"^expected a 3-letter currency code like .*$", "enter a currency code like RUB"),
    (r"^must be at least (?P<n>-?\d+)$", "must be at least %(n)s"),
    (r"^must be at most (?P<n>-?\d+)$", "must be at most %(n)s"),
    (r"^expected one of .*$", "choose one of the offered values"),
    (r"^\w+ \d+ not found$", "Not found: it may have been deleted."),
))

# every text this module translates (the catalogs must have them all)
MESSAGE_IDS: tuple[str, ...] = ("%(field)s: %(problem)s", *FIELD_LABELS.values(), *(m for _, m in _PROBLEMS))


def _label(field: str, t: Callable[..., str]) -> str:
    """``phones.0.number`` is labelled like ``number``: the last named part counts."""
    parts = [p for p in field.split(".") if not p.isdigit()]
    for part in reversed(parts):
        if part in FIELD_LABELS:
            return t(FIELD_LABELS[part])
    return field


def human_message(field: str | None, problem: str, lang: str) -> str:
    """*problem* (the store's wording) for a person reading *lang*, with the field's label."""
    t = gettext_for(lang)
    said = problem
    for pattern, message_id in _PROBLEMS:
        match = pattern.match(problem)
        if match:
            said = t(message_id, **match.groupdict()) if match.groupdict() else t(message_id)
            break
    if not field:
        return said
    return t("%(field)s: %(problem)s", field=_label(field, t), problem=said)
