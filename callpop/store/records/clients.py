"""Clients and their phone numbers: create, read, update, list and search.

A number is stored as typed plus its E.164 form and 10-digit tail (``phones.phone_key``),
the keys the directory looks calls up by. Two clients may share a number (a switchboard,
a family): that is allowed, the pop then offers both. The same number twice on one client
is refused, it would only make the card longer.

Who may change what: a client's status set by hand and its responsible manager decide
whose KPI a client counts for, so only supervisors and admins set them (a manager who
creates a client becomes its responsible manager). A manager changes a client, and its
numbers, only when they are its responsible manager or it has none; anyone may attach a
number to a client (the desk's "attach an unknown caller"). Status and responsible
changes go to the audit trail.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, Select, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from callpop.phones import format_display, phone_key
from callpop.settings import Settings
from callpop.store import audit
from callpop.store.db import dialect_of
from callpop.store.errors import Conflict, Forbidden, NotFound, ValidationError
from callpop.store.models import Client, ClientPhone, Employee
from callpop.store.name_search import words_match
from callpop.store.records.sales import DEFAULT_LIMIT, Actor, Page, escape_like, parse_context
from callpop.store.records.schemas import (
    CLIENT_FILTERS,
    CLIENT_IN,
    CLIENT_OUT,
    CLIENT_PATCH,
    PHONE_FILTERS,
    PHONE_IN,
    PHONE_OUT,
    PHONE_PATCH,
)

__all__ = [
    "add_phone",
    "create_client",
    "delete_phone",
    "get_client",
    "get_phone",
    "list_clients",
    "list_phones",
    "update_client",
    "update_phone",
]

log = logging.getLogger(__name__)
_PHONE_QUERY = re.compile(r"^[\d\s()+\-.]+$")


def _phone_json(phone: ClientPhone, region: str) -> dict[str, Any]:
    values = {"id": phone.id, "client_id": phone.client_id, "raw": phone.raw, "e164": phone.e164,
              "display": format_display(phone.e164 or phone.raw, region), "label": phone.label}
    return PHONE_OUT.dump(values)


async def _clients_json(session: AsyncSession, clients: list[Client], settings: Settings) -> list[dict[str, Any]]:
    ids = {c.responsible_id for c in clients if c.responsible_id}
    names: dict[int, str] = {}
    if ids:
        names = {r.id: r.name for r in await session.execute(select(Employee.id, Employee.name)
                                                             .where(Employee.id.in_(ids)))}
    region = settings.phones.default_region
    out = []
    for client in clients:
        values = {f.name: getattr(client, f.name, None) for f in CLIENT_OUT.fields}
        values["responsible_name"] = names.get(client.responsible_id) if client.responsible_id else None
        values["phones"] = []
        data = CLIENT_OUT.dump(values)
        data["phones"] = [_phone_json(p, region) for p in sorted(client.phones, key=lambda p: p.id)]
        out.append(data)
    return out


async def _load_client(session: AsyncSession, client_id: int) -> Client:
    stmt = select(Client).where(Client.id == client_id).options(selectinload(Client.phones))
    client = (await session.execute(stmt)).scalar_one_or_none()
    if client is None:
        raise NotFound("client", client_id)
    return client


async def get_client(session: AsyncSession, client_id: int, settings: Settings) -> dict[str, Any]:
    return (await _clients_json(session, [await _load_client(session, client_id)], settings))[0]


def _phone_row(values: Mapping[str, Any], settings: Settings) -> ClientPhone:
    key = phone_key(values["number"], settings.phones.default_region, settings.phones.min_external_digits)
    return ClientPhone(raw=key.raw, e164=key.e164, tail10=key.tail10, label=values.get("label"))


def _same_number(a: ClientPhone, b: ClientPhone) -> bool:
    return (a.e164 is not None and a.e164 == b.e164) or (a.e164 is None and a.tail10 == b.tail10)


async def _check_client_fields(session: AsyncSession, values: Mapping[str, Any], client_id: int | None) -> None:
    responsible = values.get("responsible_id")
    if responsible is not None:
        employee = await session.get(Employee, responsible)
        if employee is None or not employee.active:
            raise ValidationError("responsible_id", f"no active employee with id {responsible}")
    external = values.get("external_id")
    if external is not None:
        taken = (await session.execute(select(Client.id).where(Client.external_id == external))).scalar()
        if taken is not None and taken != client_id:
            raise Conflict("external_id", f"client {taken} already has external id {external!r}")


async def create_client(session: AsyncSession, data: object, actor: Actor, settings: Settings) -> dict[str, Any]:
    """A new client; a manager who creates one (usually from an unknown caller's card)
    becomes its responsible manager unless the body names another."""
    values = CLIENT_IN.parse(data, parse_context(settings))
    _check_supervised(values, actor, creating=True)
    await _check_client_fields(session, values, None)
    phones: list[ClientPhone] = []
    for i, item in enumerate(values.pop("phones", None) or []):
        row = _phone_row(item, settings)
        if any(_same_number(row, other) for other in phones):
            raise Conflict(f"phones[{i}].number", "the same number is listed twice")
        phones.append(row)
    if values.get("status") is not None:
        values["status_source"] = "manual"
    if values.get("responsible_id") is None and actor.role == "manager":
        values["responsible_id"] = actor.id
    client = Client(**{k: v for k, v in values.items() if v is not None})
    client.phones = phones
    session.add(client)
    await session.flush()
    audit.record(session, "client", client.id, audit.changes_of("client", None, audit.snapshot(client, "client")),
                 employee_id=actor.id, client_id=client.id)
    log.info("client %s created by employee %s with %d phone(s)", client.id, actor.id, len(phones))
    return await get_client(session, client.id, settings)


async def update_client(session: AsyncSession, client_id: int, data: object, actor: Actor,
                        settings: Settings) -> dict[str, Any]:
    client = await _load_client(session, client_id)
    values = CLIENT_PATCH.parse(data, parse_context(settings), partial=True)
    _check_supervised(values, actor, creating=False)
    _check_own_client(client, actor, next(iter(values), None))
    await _check_client_fields(session, values, client_id)
    if "status" in values:
        if values["status"] is None:
            values["status_source"] = "rule"  # hand the decision back to the rule
            values["status"] = client.status
        else:
            values["status_source"] = "manual"
    before = audit.snapshot(client, "client")
    for name, value in values.items():
        setattr(client, name, value)
    await session.flush()
    audit.record(session, "client", client_id, audit.changes_of("client", before, audit.snapshot(client, "client")),
                 employee_id=actor.id, client_id=client_id)
    log.info("client %s changed by employee %s: %s", client_id, actor.id, ", ".join(sorted(values)))
    session.expire(client)
    return await get_client(session, client_id, settings)


async def add_phone(session: AsyncSession, client_id: int, data: object, actor: Actor,
                    settings: Settings) -> dict[str, Any]:
    """Attach a number (e.g. an unknown caller's) to an existing client."""
    client = await _load_client(session, client_id)
    values = PHONE_IN.parse(data, parse_context(settings))
    row = _phone_row(values, settings)
    if any(_same_number(row, other) for other in client.phones):
        raise Conflict("number", f"client {client_id} already has this number")
    row.client_id = client_id
    session.add(row)
    await session.flush()
    log.info("phone %s attached to client %s by employee %s", row.id, client_id, actor.id)
    return _phone_json(row, settings.phones.default_region)


def _check_supervised(values: Mapping[str, Any], actor: Actor, *, creating: bool) -> None:
    """Manual status and the responsible manager are a supervisor's to set."""
    if actor.is_supervisor:
        return
    if "status" in values and (values["status"] is not None or not creating):
        raise Forbidden("a client's status is set by the regular-client rule or by a supervisor", field="status")
    responsible = values.get("responsible_id")
    if "responsible_id" in values and not (creating and responsible in (None, actor.id)):
        raise Forbidden("the responsible manager is assigned by a supervisor", field="responsible_id")


def _check_own_client(client: Client, actor: Actor, field: str | None) -> None:
    if actor.is_supervisor or client.responsible_id in (None, actor.id):
        return
    raise Forbidden("this client belongs to a colleague: only its responsible manager or a supervisor may change "
                    "it", field=field)


async def _client_of_phone(session: AsyncSession, phone: ClientPhone) -> Client:
    return await _load_client(session, phone.client_id)


async def _load_phone(session: AsyncSession, phone_id: int) -> ClientPhone:
    phone = await session.get(ClientPhone, phone_id)
    if phone is None:
        raise NotFound("phone", phone_id)
    return phone


async def get_phone(session: AsyncSession, phone_id: int, settings: Settings) -> dict[str, Any]:
    return _phone_json(await _load_phone(session, phone_id), settings.phones.default_region)


async def _number_condition(session: AsyncSession, number: str, settings: Settings) -> ColumnElement[bool]:
    """The directory's rule (store/directory.py): the same E.164 number when any phone has
    it, else the same 10-digit tail; an unreadable number matches nothing."""
    key = phone_key(number, settings.phones.default_region, settings.phones.min_external_digits)
    if key.e164 is not None:
        exact = ClientPhone.e164 == key.e164
        if (await session.execute(select(ClientPhone.id).where(exact).limit(1))).first() is not None:
            return exact
    if key.tail10 is not None:
        return ClientPhone.tail10 == key.tail10
    return false()


async def list_phones(session: AsyncSession, raw_query: Mapping[str, Any], settings: Settings) -> Page:
    """Numbers, filtered by client and/or by a number as a caller would dial it."""
    query = PHONE_FILTERS.parse(raw_query, parse_context(settings))
    conditions: list[ColumnElement[bool]] = []
    if query.get("client_id"):
        conditions.append(ClientPhone.client_id == query["client_id"])
    if query.get("number"):
        conditions.append(await _number_condition(session, query["number"], settings))
    limit = query.get("limit") or DEFAULT_LIMIT
    offset = query.get("offset") or 0
    stmt = select(ClientPhone).where(*conditions).order_by(ClientPhone.id).limit(limit).offset(offset)
    rows = list((await session.execute(stmt)).scalars())
    total = (await session.execute(select(func.count()).select_from(ClientPhone).where(*conditions))).scalar_one()
    region = settings.phones.default_region
    return Page([_phone_json(p, region) for p in rows], total, limit, offset)


async def update_phone(session: AsyncSession, phone_id: int, data: object, actor: Actor,
                       settings: Settings) -> dict[str, Any]:
    phone = await _load_phone(session, phone_id)
    values = PHONE_PATCH.parse(data, parse_context(settings), partial=True)
    _check_own_client(await _client_of_phone(session, phone), actor, next(iter(values), None))
    if "number" in values:
        fresh = _phone_row(values, settings)
        others = (await session.execute(select(ClientPhone).where(ClientPhone.client_id == phone.client_id,
                                                                  ClientPhone.id != phone_id))).scalars()
        if any(_same_number(fresh, other) for other in others):
            raise Conflict("number", f"client {phone.client_id} already has this number")
        phone.raw, phone.e164, phone.tail10 = fresh.raw, fresh.e164, fresh.tail10
    if "label" in values:
        phone.label = values["label"]
    await session.flush()
    log.info("phone %s changed by employee %s", phone_id, actor.id)
    return _phone_json(phone, settings.phones.default_region)


async def delete_phone(session: AsyncSession, phone_id: int, actor: Actor) -> None:
    phone = await _load_phone(session, phone_id)
    _check_own_client(await _client_of_phone(session, phone), actor, None)
    await session.delete(phone)
    await session.flush()
    log.info("phone %s of client %s removed by employee %s", phone_id, phone.client_id, actor.id)


def _client_search(q: str, settings: Settings, dialect: str) -> ColumnElement[bool]:
    """Digits look for a number (any part of E.164 or the 10-digit tail), words for a name."""
    digits = re.sub(r"\D", "", q)
    if _PHONE_QUERY.match(q) and len(digits) >= 4:
        key = phone_key(q, settings.phones.default_region, settings.phones.min_external_digits)
        pattern = f"%{escape_like(key.tail10 or digits)}%"
        phone_match = select(ClientPhone.client_id).where(
            or_(ClientPhone.e164.like(pattern, escape="\\"), ClientPhone.tail10.like(pattern, escape="\\")))
        return Client.id.in_(phone_match)
    return words_match(q, dialect, Client.name, Client.company)


async def list_clients(session: AsyncSession, raw_query: Mapping[str, Any], settings: Settings) -> Page:
    query = CLIENT_FILTERS.parse(raw_query, parse_context(settings))
    conditions: list[ColumnElement[bool]] = []
    if query.get("q"):
        conditions.append(_client_search(query["q"], settings, dialect_of(session)))
    if query.get("status"):
        conditions.append(Client.status == query["status"])
    if query.get("responsible_id"):
        conditions.append(Client.responsible_id == query["responsible_id"])
    limit = query.get("limit") or DEFAULT_LIMIT
    offset = query.get("offset") or 0
    stmt: Select[Any] = (select(Client).where(*conditions).options(selectinload(Client.phones))
                         .order_by(Client.name, Client.id).limit(limit).offset(offset))
    clients = list((await session.execute(stmt)).scalars())
    total = (await session.execute(select(func.count()).select_from(Client).where(*conditions))).scalar_one()
    return Page(await _clients_json(session, clients, settings), total, limit, offset)
