"""What a client, phone, agreement, promise, note, payment and receivable look like on the
wire: the request bodies the store accepts, the objects it answers with, and the filters of
each list. ``sales.py`` and ``clients.py`` validate with these and ``server/openapi.py`` publishes them.
"""

from __future__ import annotations

from callpop.store.records.validation import Field, Kind, Schema

__all__ = [
    "AGREEMENT_STATUSES",
    "PROMISE_STATUSES",
    "RESOURCES",
    "Resource",
]

AGREEMENT_STATUSES = ("open", "won", "lost", "cancelled")
PROMISE_STATUSES = ("open", "kept", "broken", "cancelled")
CLIENT_STATUSES = ("new", "regular")

_NAME = 300
_TEXT = 10_000


def _id(name: str, doc: str = "", *, required: bool = False) -> Field:
    return Field(name, "id", doc, required=required)


def _ro(name: str, kind: Kind = "string", doc: str = "") -> Field:
    return Field(name, kind, doc, read_only=True)


_PAGING = (
    Field("limit", "int", "page size", minimum=1, maximum=500),
    Field("offset", "int", "rows to skip", minimum=0, maximum=10_000_000),
)

# --- phones -------------------------------------------------------------------------------

PHONE_IN = Schema("PhoneInput", (
    Field("number", "phone", "as typed; normalised to E.164 for lookup", required=True, max_length=64),
    Field("label", "string", "e.g. mobile, office", max_length=50),
))
PHONE_PATCH = Schema("PhonePatch", PHONE_IN.fields)
PHONE_OUT = Schema("Phone", (
    _ro("id", "id"), _ro("client_id", "id"), _ro("raw"), _ro("e164", doc="null if not a valid public number"),
    _ro("display", doc="formatted for people"), _ro("label"),
))
PHONE_FILTERS = Schema("PhoneFilters", (
    _id("client_id"),
    Field("number", "string", "matched as the pop matches a caller: the same E.164 number, else "
          "the same last 10 digits", max_length=64),
    *_PAGING,
))

# --- clients ------------------------------------------------------------------------------

CLIENT_IN = Schema("ClientInput", (
    Field("name", "string", "person or company name", required=True, max_length=_NAME),
    Field("company", "string", max_length=_NAME),
    _id("responsible_id", "the responsible manager (employee id)"),
    Field("status", "choice", "setting it marks the status as set by hand", choices=CLIENT_STATUSES),
    Field("external_id", "string", "id in 1C or a CRM", max_length=100),
    Field("phones", "list", "numbers to attach", items=PHONE_IN, max_length=20),
))
CLIENT_PATCH = Schema("ClientPatch", tuple(f for f in CLIENT_IN.fields if f.name != "phones"))
CLIENT_OUT = Schema("Client", (
    _ro("id", "id"), _ro("name"), _ro("company"), _ro("responsible_id", "id"), _ro("responsible_name"),
    _ro("status", doc="new | regular"), _ro("status_source", doc="rule | manual"), _ro("external_id"),
    _ro("created_at", "datetime"), _ro("updated_at", "datetime"),
    Field("phones", "list", items=PHONE_OUT, read_only=True),
))
CLIENT_FILTERS = Schema("ClientFilters", (
    Field("q", "string", "name, company or phone digits", max_length=100),
    Field("status", "choice", choices=CLIENT_STATUSES),
    _id("responsible_id"),
    *_PAGING,
))

# --- agreements ---------------------------------------------------------------------------

AGREEMENT_IN = Schema("AgreementInput", (
    _id("client_id", required=True),
    Field("title", "string", "deal, contract or arrangement", required=True, max_length=_NAME),
    Field("terms", "text", max_length=_TEXT),
    Field("amount", "money"),
    Field("currency", "currency"),
    Field("status", "choice", choices=AGREEMENT_STATUSES),
    _id("call_id", "the call it was agreed in"),
    Field("external_id", "string", max_length=100),
))
AGREEMENT_PATCH = Schema("AgreementPatch", tuple(f for f in AGREEMENT_IN.fields if f.name != "client_id"))
AGREEMENT_OUT = Schema("Agreement", (
    _ro("id", "id"), _ro("client_id", "id"), _ro("client_name"), _ro("title"), _ro("terms"),
    _ro("amount", "money"), _ro("currency"), _ro("status"), _ro("made_by_id", "id"), _ro("made_by_name"),
    _ro("call_id", "id"), _ro("external_id"), _ro("created_at", "datetime"), _ro("closed_at", "datetime"),
))
AGREEMENT_FILTERS = Schema("AgreementFilters", (
    _id("client_id"), Field("status", "choice", choices=AGREEMENT_STATUSES), _id("made_by"),
    Field("created_after", "datetime"), Field("created_before", "datetime"), *_PAGING,
))

# --- promises -----------------------------------------------------------------------------

PROMISE_IN = Schema("PromiseInput", (
    _id("client_id", required=True),
    Field("text", "text", "what was promised", required=True, max_length=2000),
    Field("due_at", "datetime", "when; a time without offset is the company's local time"),
    _id("call_id", "the call it was promised in"),
    Field("external_id", "string", max_length=100),
))
PROMISE_PATCH = Schema("PromisePatch", (
    Field("text", "text", required=True, max_length=2000),
    Field("due_at", "datetime"),
    Field("status", "choice", "closing records you as closed_by", choices=PROMISE_STATUSES),
))
PROMISE_OUT = Schema("Promise", (
    _ro("id", "id"), _ro("client_id", "id"), _ro("client_name"), _ro("text"), _ro("due_at", "datetime"),
    _ro("overdue", "bool"), _ro("status"), _ro("made_by_id", "id"), _ro("made_by_name"), _ro("call_id", "id"),
    _ro("external_id"), _ro("created_at", "datetime"), _ro("closed_by_id", "id"), _ro("closed_by_name"),
    _ro("closed_at", "datetime"),
))
PROMISE_FILTERS = Schema("PromiseFilters", (
    _id("client_id"), Field("status", "choice", choices=PROMISE_STATUSES), _id("made_by"),
    Field("due_after", "datetime"), Field("due_before", "datetime"),
    Field("q", "string", "words in the text", max_length=100), *_PAGING,
))

# --- notes --------------------------------------------------------------------------------

NOTE_IN = Schema("NoteInput", (
    _id("client_id", required=True),
    Field("text", "text", required=True, max_length=_TEXT),
    _id("call_id", "the call it is about"),
))
NOTE_PATCH = Schema("NotePatch", (Field("text", "text", required=True, max_length=_TEXT),))
NOTE_OUT = Schema("Note", (
    _ro("id", "id"), _ro("client_id", "id"), _ro("client_name"), _ro("text"), _ro("author_id", "id"),
    _ro("author_name"), _ro("call_id", "id"), _ro("created_at", "datetime"),
))
NOTE_FILTERS = Schema("NoteFilters", (
    _id("client_id"), _id("made_by", "author"), Field("q", "string", max_length=100), *_PAGING,
))

# --- payments and receivables ---------------------------------------------------------------

PAYMENT_IN = Schema("PaymentInput", (
    _id("client_id", required=True),
    _id("agreement_id", "must belong to the same client"),
    Field("amount", "money", required=True),
    Field("currency", "currency"),
    Field("paid_at", "datetime", required=True),
    Field("external_id", "string", max_length=100),
))
PAYMENT_PATCH = Schema("PaymentPatch", tuple(f for f in PAYMENT_IN.fields if f.name != "client_id"))
PAYMENT_OUT = Schema("Payment", (
    _ro("id", "id"), _ro("client_id", "id"), _ro("client_name"), _ro("agreement_id", "id"),
    _ro("amount", "money"), _ro("currency"), _ro("paid_at", "datetime"), _ro("external_id"),
    _ro("created_at", "datetime"),
))
PAYMENT_FILTERS = Schema("PaymentFilters", (
    _id("client_id"), _id("agreement_id"), Field("paid_after", "datetime"), Field("paid_before", "datetime"),
    *_PAGING,
))

RECEIVABLE_IN = Schema("ReceivableInput", (
    _id("client_id", required=True),
    _id("agreement_id", "must belong to the same client"),
    Field("amount", "money", required=True),
    Field("currency", "currency"),
    Field("issued_at", "datetime", required=True),
    Field("due_at", "datetime"),
    Field("settled_at", "datetime", "set when paid off"),
    Field("external_id", "string", max_length=100),
))
RECEIVABLE_PATCH = Schema("ReceivablePatch", tuple(f for f in RECEIVABLE_IN.fields if f.name != "client_id"))
RECEIVABLE_OUT = Schema("Receivable", (
    _ro("id", "id"), _ro("client_id", "id"), _ro("client_name"), _ro("agreement_id", "id"),
    _ro("amount", "money"), _ro("currency"), _ro("issued_at", "datetime"), _ro("due_at", "datetime"),
    _ro("settled_at", "datetime"), _ro("external_id"),
))
RECEIVABLE_FILTERS = Schema("ReceivableFilters", (
    _id("client_id"), _id("agreement_id"), Field("open", "bool", "only not yet settled"),
    Field("due_before", "datetime"), *_PAGING,
))


class Resource:
    """The four schemas of one kind of record (create, patch, output, list filters)."""

    def __init__(self, name: str, plural: str, create: Schema, patch: Schema, out: Schema,
                 filters: Schema) -> None:
        self.name = name
        self.plural = plural
        self.create = create
        self.patch = patch
        self.out = out
        self.filters = filters


RESOURCES: dict[str, Resource] = {
    "client": Resource("client", "clients", CLIENT_IN, CLIENT_PATCH, CLIENT_OUT, CLIENT_FILTERS),
    "phone": Resource("phone", "phones", PHONE_IN, PHONE_PATCH, PHONE_OUT, PHONE_FILTERS),
    "agreement": Resource("agreement", "agreements", AGREEMENT_IN, AGREEMENT_PATCH, AGREEMENT_OUT,
                          AGREEMENT_FILTERS),
    "promise": Resource("promise", "promises", PROMISE_IN, PROMISE_PATCH, PROMISE_OUT, PROMISE_FILTERS),
    "note": Resource("note", "notes", NOTE_IN, NOTE_PATCH, NOTE_OUT, NOTE_FILTERS),
    "payment": Resource("payment", "payments", PAYMENT_IN, PAYMENT_PATCH, PAYMENT_OUT, PAYMENT_FILTERS),
    "receivable": Resource("receivable", "receivables", RECEIVABLE_IN, RECEIVABLE_PATCH, RECEIVABLE_OUT,
                           RECEIVABLE_FILTERS),
}
