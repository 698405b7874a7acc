"""Error messages for people: a store error said again in the user's language, naming the
field by the label the form shows ("Due date", not ``due_at``).

The store's messages are written for programs and logs (``due_at: year 9999 is out of
range (2000-2100)``) and stay in the API's ``error``; the API adds ``message``, built here,
for the page to show. Messages are matched by their wording; one not listed here is shown
with the field's label and the original text, so nothing is ever hidden (a test walks every
error the code raises and fails on one that would reach a Russian reader in English).

The server's own refusals (``errors.Refusal``: no login, a role, a bad query of a page) carry
their message id and are said by :func:`refusal_text`; any other whole message (a period's
or a plan's error, ``field: problem``) by :func:`text_for_people`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from callpop.server.errors import Refusal
from callpop.server.i18n import gettext_for, is_message_id

__all__ = ["FIELD_LABELS", "MESSAGE_IDS", "human_message", "refusal_text", "text_for_people"]

# the labels of the forms that send these fields
FIELD_LABELS: dict[str, str] = {
    "amount": "Amount", "company": "Company", "currency": "Currency", "due_at": "Due",
    "external_id": "External id", "issued_at": "Issued", "label": "Label", "name": "Name",
    "number": "Phone number", "phones": "Phone number", "paid_at": "Paid", "settled_at": "Settled",
    "status": "Status", "terms": "Terms", "text": "Text", "title": "Agreement", "q": "Search",
    "client_id": "Client", "call_id": "Call", "agreement_id": "Agreement", "made_by": "Manager",
    "responsible_id": "Responsible manager", "body": "Request", "language": "Language",
    "client_phone": "Phone number", "from": "From", "to": "To", "date": "Date", "period": "Period",
    "month": "Month", "kpi": "KPI", "employee": "Manager", "employee_id": "Manager", "target": "Plan",
    "plans": "Plans", "page": "Page", "limit": "Rows per page", "entity": "Record",
    "offset": "Page", "before": "Before", "after": "After",
    "status_source": "Status set by", "Idempotency-Key": "Request key",
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
    (r"^expected text, got .*$", "enter text"),
    (r"^expected an id \(a whole number from 1\), got .*$", "expected the number of a record"),
    (r"^expected a whole number from (?P<low>\d+) to (?P<high>\d+), (got|found) .*$",
     "enter a whole number from %(low)s to %(high)s"),
    (r"^expected a whole number, got .*$", "enter a whole number"),
    (r"^expected true or false, got .*$", "choose yes or no"),
    (r"^expected a list, got .*$", "expected a list"),
    (r"^has too many items \(at most (?P<limit>\d+)\)$", "too many items (at most %(limit)s)"),
    (r"^expected a JSON object, got .*$", "expected a JSON object"),
    (r"^unknown field$", "this field is not known"),
    (r"^no client with id \d+$", "there is no such client"),
    (r"^no call with id \d+$", "there is no such call"),
    (r"^no agreement \d+ of client \d+$", "this client has no such agreement"),
    (r"^no active employee with id \d+$", "there is no such active employee"),
    (r"^client (?P<client>\d+) already has external id .*$", "client %(client)s already has this external id"),
    (r"^the same number is listed twice$", "the same number is listed twice"),
    (r"^client (?P<client>\d+) already has this number$", "client %(client)s already has this number"),
    (r"^you have no extension to call from: .*$",
     "you have no extension to call from: ask an administrator to add one"),
    (r"^cannot dial .*: not a valid public number$", "this is not a number that can be dialled"),
    (r"^expected Content-Type application/json(, got .*)?$", "the request must be JSON"),
    (r"^too large$", "the request is too large"),
    (r"^expected an object with month and plans$", "expected an object with month and plans"),
    (r"^(is )?not valid JSON$", "the request is not valid JSON"),
    (r"^\w+s are entered by supervisors or imported from accounting: .*$",
     "these records are entered by supervisors or imported from accounting: a manager may only read them"),
    (r"^this \w+ was written by .*: only its author or a supervisor may change it$",
     "this record was written by someone else: only its author or a supervisor may change it"),
    (r"^a client's status is set by the regular-client rule or by a supervisor$",
     "a client's status is set by the regular-client rule or by a supervisor"),
    (r"^the responsible manager is assigned by a supervisor$", "the responsible manager is assigned by a supervisor"),
    (r"^this client belongs to a colleague: .*$",
     "this client belongs to a colleague: only its responsible manager or a supervisor may change it"),
    (r"^calls to (?P<number>\S+) are not allowed from callpop: .*$",
     "calls to %(number)s are not allowed from callpop: ask an administrator"),
    (r"^expected a date like (?P<example>\S+), found .*$", "enter a date like %(example)s"),
    (r"^expected a date like .*$", "enter a date"),
    (r"^a custom period is at most (?P<days>\d+) days$", "a custom period is at most %(days)s days"),
    (r"^a custom period needs both from and to dates$", "a custom period needs both dates: from and to"),
    (r"^must not be before from$", "must not be before the start"),
    (r"^expected a month like .*$", "enter a month"),
    (r"^expected a number from 0 to (?P<high>\d+), found .*$", "enter a number from 0 to %(high)s"),
    (r"^expected a number, found .*$", "enter a number"),
    (r"^expected a list of \{employee_id, kpi, target\}$", "expected a list of plans"),
    (r"^at most (?P<n>\d+) items per request$", "at most %(n)s plans at a time"),
    (r"^expected an object$", "expected an object"),
    (r"^expected a positive whole number, found .*$", "enter a whole number from 1"),
    (r"^no employee \d+$", "there is no such employee"),
    (r"^not a plan field$", "this is not a plan field"),
    (r"^expected an employee id, found .*$", "expected the number of an employee"),
    (r"^expected 8 to 64 letters, digits or .*$", "the key is not valid: reload the page and save again"),
    (r"^this key already saved \w+ \d+ with another \w+: .*$",
     "this key already saved other content: send new content with a new key"),
))

# every text this module translates (the catalogs must have them all)
MESSAGE_IDS: tuple[str, ...] = ("%(field)s: %(problem)s", *FIELD_LABELS.values(), *(m for _, m in _PROBLEMS))


_INDEX = re.compile(r"\[\d+\]")
_FIELD = re.compile(r"^[\w.\[\]]+$")


def _label(field: str, t: Callable[..., str]) -> str:
    """``phones.0.number`` (or ``phones[0].number``) is labelled like ``number``: the last
    named part counts."""
    parts = [p for p in _INDEX.sub("", field).split(".") if p and not p.isdigit()]
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


def text_for_people(message: str, lang: str) -> str:
    """A whole English message (a store error's ``str``, ``field: problem``) for a person:
    the catalog's translation of it when it is a message id, else the problem said in words
    after the field's label."""
    if is_message_id(message):
        return gettext_for(lang)(message)
    for pattern, _ in _PROBLEMS:
        if pattern.match(message):
            return human_message(None, message, lang)
    field, sep, problem = message.partition(": ")
    if sep and _FIELD.match(field):
        return human_message(field, problem, lang)
    return human_message(None, message, lang)


def refusal_text(exc: Refusal, lang: str) -> str:
    """What the server's refusal says to a person reading *lang*."""
    if exc.params or is_message_id(exc.message_id):
        return gettext_for(lang)(exc.message_id, **exc.params)
    return text_for_people(str(exc), lang)
