"""Declared fields: one description per input or output field, used three ways.

The same ``Field`` parses what a caller sent (raising ``ValidationError`` that names the
field), turns a stored value into JSON, and describes itself as JSON Schema for the
OpenAPI document. Because the API validates with exactly what it publishes, the document
cannot drift from the behaviour.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal
from zoneinfo import ZoneInfo

from callpop.phones import phone_key
from callpop.store.errors import ValidationError

__all__ = ["Field", "Kind", "ParseContext", "Schema"]

Kind = Literal["string", "text", "id", "int", "money", "datetime", "choice", "phone", "currency",
               "bool", "list"]

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_MAX_MONEY = Decimal("999999999999.99")
_MAX_ID = 2**31 - 1


@dataclass(frozen=True, slots=True)
class ParseContext:
    """What parsing needs from the settings: how to read phones and local times."""

    region: str = "RU"
    min_external_digits: int = 7
    timezone: str = "Europe/Moscow"


@dataclass(frozen=True, slots=True)
class Field:
    """One field: its name, kind and limits; ``doc`` goes to the OpenAPI description."""

    name: str
    kind: Kind
    doc: str = ""
    required: bool = False
    nullable: bool = True
    max_length: int | None = None
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = ()
    items: Schema | None = None
    read_only: bool = False

    # --- input -------------------------------------------------------------------------

    def parse(self, value: object, ctx: ParseContext, prefix: str = "") -> Any:
        """The value as the store keeps it; ``ValidationError`` naming the field if not."""
        name = prefix + self.name
        if value is None or (isinstance(value, str) and not value.strip() and self.kind != "list"):
            if self.required or not self.nullable:
                raise ValidationError(name, "is required")
            return None
        parser = getattr(self, f"_parse_{self.kind}")
        return parser(value, ctx, name)

    def _parse_string(self, value: object, ctx: ParseContext, name: str) -> str:
        if not isinstance(value, str):
            raise ValidationError(name, f"expected text, got {_json_type(value)}")
        text = value.strip()
        if _CONTROL.search(text if self.kind == "text" else text.replace("\n", "\x01")):
            raise ValidationError(name, "contains control characters")
        limit = self.max_length
        if limit is not None and len(text) > limit:
            raise ValidationError(name, f"is too long ({len(text)} characters, at most {limit})")
        return text

    _parse_text = _parse_string

    def _parse_id(self, value: object, ctx: ParseContext, name: str) -> int:
        number = self._parse_int(value, ctx, name)
        if number < 1 or number > _MAX_ID:
            raise ValidationError(name, f"expected an id (a whole number from 1), got {value!r}")
        return number

    def _parse_int(self, value: object, ctx: ParseContext, name: str) -> int:
        if isinstance(value, bool):
            raise ValidationError(name, "expected a whole number, got a boolean")
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,12}\s*", value):
            value = int(value)
        if not isinstance(value, int):
            raise ValidationError(name, f"expected a whole number, got {_json_type(value)}")
        if self.minimum is not None and value < self.minimum:
            raise ValidationError(name, f"must be at least {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise ValidationError(name, f"must be at most {self.maximum}")
        return value

    def _parse_money(self, value: object, ctx: ParseContext, name: str) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValidationError(name, f"expected an amount like 1500.50, got {_json_type(value)}")
        text = str(value).strip().replace(" ", "").replace(",", ".")
        try:
            amount = Decimal(text)
        except InvalidOperation:
            raise ValidationError(name, f"expected an amount like 1500.50, got {value!r}") from None
        if not amount.is_finite():
            raise ValidationError(name, "expected a finite amount")
        if amount < 0:
            raise ValidationError(name, "must not be negative")
        if amount > _MAX_MONEY:
            raise ValidationError(name, f"is too large (at most {_MAX_MONEY})")
        if amount != amount.quantize(Decimal("0.01")):
            raise ValidationError(name, "has more than 2 decimal places")
        return amount.quantize(Decimal("0.01"))

    def _parse_datetime(self, value: object, ctx: ParseContext, name: str) -> dt.datetime:
        if not isinstance(value, str):
            raise ValidationError(name, f"expected a date-time like 2026-03-01T15:00, got {_json_type(value)}")
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            if len(text) == 10:
                parsed = dt.datetime.combine(dt.date.fromisoformat(text), dt.time(0, 0))
            else:
                parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValidationError(name, f"expected a date-time like 2026-03-01T15:00, got {value!r}") from None
        if not 2000 <= parsed.year <= 2100:
            raise ValidationError(name, f"year {parsed.year} is out of range (2000-2100)")
        if parsed.tzinfo is None:
            # A time typed into a form is the company's local time (the KPI timezone).
            parsed = parsed.replace(tzinfo=ZoneInfo(ctx.timezone))
        return parsed.astimezone(dt.UTC)

    def _parse_choice(self, value: object, ctx: ParseContext, name: str) -> str:
        if not isinstance(value, str) or value not in self.choices:
            raise ValidationError(name, f"expected one of {', '.join(self.choices)}, got {value!r}")
        return value

    def _parse_phone(self, value: object, ctx: ParseContext, name: str) -> str:
        text = self._parse_string(value, ctx, name)
        key = phone_key(text, ctx.region, ctx.min_external_digits)
        if not key.external or (key.e164 is None and key.tail10 is None):
            raise ValidationError(name, f"expected a phone number like +7 916 123-45-67, got {text!r}")
        return text

    def _parse_currency(self, value: object, ctx: ParseContext, name: str) -> str:
        if not isinstance(value, str) or not _CURRENCY.match(value.strip().upper()):
            raise ValidationError(name, f"expected a 3-letter currency code like RUB, got {value!r}")
        return value.strip().upper()

    def _parse_bool(self, value: object, ctx: ParseContext, name: str) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ValidationError(name, f"expected true or false, got {value!r}")

    def _parse_list(self, value: object, ctx: ParseContext, name: str) -> list[dict[str, Any]]:
        if not isinstance(value, list) or self.items is None:
            raise ValidationError(name, f"expected a list, got {_json_type(value)}")
        if self.max_length is not None and len(value) > self.max_length:
            raise ValidationError(name, f"has too many items (at most {self.max_length})")
        return [self.items.parse(item, ctx, prefix=f"{name}[{i}].") for i, item in enumerate(value)]

    # --- output ------------------------------------------------------------------------

    def dump(self, value: Any) -> Any:
        """The JSON form of a stored value."""
        if value is None:
            return None
        if self.kind == "datetime":
            return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        if self.kind == "money":
            return str(value)
        if self.kind == "list" and self.items is not None:
            return [self.items.dump(item) for item in value]
        return value

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = dict(_BASE_SCHEMAS[self.kind])
        if self.kind == "choice":
            schema["enum"] = list(self.choices)
        if self.max_length is not None:
            schema["maxItems" if self.kind == "list" else "maxLength"] = self.max_length
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        if self.kind == "list" and self.items is not None:
            schema["items"] = {"$ref": f"#/components/schemas/{self.items.name}"}
        if self.nullable and not self.required:
            schema["type"] = [schema["type"], "null"]
        if self.doc:
            schema["description"] = self.doc
        if self.read_only:
            schema["readOnly"] = True
        return schema


_BASE_SCHEMAS: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "text": {"type": "string"},
    "id": {"type": "integer", "minimum": 1},
    "int": {"type": "integer"},
    "money": {"type": "string", "pattern": r"^\d{1,12}(\.\d{1,2})?$",
              "description": "amount, a decimal string (numbers are accepted on input)"},
    "datetime": {"type": "string", "format": "date-time"},
    "choice": {"type": "string"},
    "phone": {"type": "string", "examples": ["+7 916 123-45-67"]},
    "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
    "bool": {"type": "boolean"},
    "list": {"type": "array"},
}


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


@dataclass(frozen=True, slots=True)
class Schema:
    """A named set of fields: a request body, a response object or a query string."""

    name: str
    fields: tuple[Field, ...]
    doc: str = ""
    _by_name: dict[str, Field] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {f.name: f for f in self.fields})

    def __getitem__(self, name: str) -> Field:
        return self._by_name[name]

    def parse(self, data: object, ctx: ParseContext, *, partial: bool = False,
              prefix: str = "") -> dict[str, Any]:
        """Validated values of the fields present; unknown fields are refused by name.

        ``partial`` (PATCH) checks only the fields sent; a required field may still not be
        emptied.
        """
        if not isinstance(data, Mapping):
            raise ValidationError(prefix.rstrip(".") or "body", f"expected a JSON object, got {_json_type(data)}")
        for key in data:
            if key not in self._by_name or self._by_name[key].read_only:
                raise ValidationError(prefix + str(key), "unknown field")
        out: dict[str, Any] = {}
        for f in self.fields:
            if f.read_only:
                continue
            if f.name in data:
                out[f.name] = f.parse(data[f.name], ctx, prefix)
            elif f.required and not partial:
                raise ValidationError(prefix + f.name, "is required")
        return out

    def dump(self, obj: object) -> dict[str, Any]:
        """The JSON object for a stored row (attributes named like the fields) or a mapping."""
        if isinstance(obj, Mapping):
            return {f.name: f.dump(obj.get(f.name)) for f in self.fields}
        return {f.name: f.dump(getattr(obj, f.name, None)) for f in self.fields}

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {f.name: f.json_schema() for f in self.fields},
            "additionalProperties": False,
        }
        required = [f.name for f in self.fields if f.required]
        if required:
            schema["required"] = required
        if self.doc:
            schema["description"] = self.doc
        return schema
