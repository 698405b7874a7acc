"""Importing messy files into the database (SQLite and PostgreSQL): good lines go in, bad
lines are reported with their numbers, and importing again changes nothing."""

from __future__ import annotations

import datetime as dt
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from callpop.settings import Settings
from callpop.store.db import Database
from callpop.store.imports.base import ChunkResult, ImportContext
from callpop.store.imports.clients import ClientLine
from callpop.store.imports.importer import ImportReport, import_file
from callpop.store.models import Agreement, Client, ClientPhone, Employee, Payment, Promise, Receivable
from tests.support import paths

FIXTURES = paths.FIXTURES / "import"
NOW = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)


async def _employees(db: Database) -> dict[str, int]:
    async with db.sessions() as session, session.begin():
        people = [Employee(name="Иванова Мария", login="ivanova", password_hash="x", role="manager"),
                  Employee(name="Петров Сергей", login="petrov", password_hash="x", role="manager")]
        session.add_all(people)
        await session.flush()
        return {p.login: p.id for p in people}


async def _import(db: Database, settings: Settings, kind: str, name: str | Path) -> ImportReport:
    path = name if isinstance(name, Path) else FIXTURES / name
    return await import_file(db, kind, path, settings, now=NOW)


async def _clients(db: Database) -> dict[str, tuple[Client, list[str]]]:
    async with db.sessions() as session:
        clients = (await session.scalars(select(Client))).all()
        phones = (await session.execute(select(ClientPhone.client_id, ClientPhone.e164, ClientPhone.raw)
                                        .order_by(ClientPhone.id))).all()
    return {c.external_id or c.name: (c, [e or f"raw:{r}" for cid, e, r in phones if cid == c.id])
            for c in clients}


async def test_1c_clients_file_good_lines_in_bad_lines_reported(db: Database, settings: Settings) -> None:
    staff = await _employees(db)
    report = await _import(db, settings, "clients", "clients-1c-cp1251.csv")
    assert (report.imported, report.updated, report.unchanged, report.skipped) == (6, 0, 0, 2)
    assert [str(e) for e in report.errors] == [
        "line 5: empty name",
        "line 9: same code '000000002' as line 3",
    ]
    assert "imported 6, updated 0, unchanged 0, skipped 2 (line 5: empty name; line 9:" in report.summary()
    warnings = [str(w) for w in report.warnings]
    assert "line 8: phone 'тел. уточнить' is not a readable number: kept as written" in warnings
    assert any(w.startswith("line 8: manager 'Неизвестный Менеджер' is not an employee") for w in warnings)

    clients = await _clients(db)
    petrov, phones = clients["000000001"]
    assert (petrov.name, petrov.responsible_id, phones) == ("Иван Петров", staff["ivanova"], ["+79161234567"])
    assert clients["000000002"][1] == ["+79031112233", "+74957654321"]
    assert clients["000000002"][0].responsible_id == staff["petrov"]  # "Петров": the only such surname
    assert clients["000000003"][1] == ["+74991234567", "+79160001122"]
    assert clients["000000005"][1] == ["+79261111111", "+79262222222"]
    kuznetsov, raw = clients["000000006"]
    assert kuznetsov.responsible_id is None and raw == ["raw:тел. уточнить"]
    assert clients["000000007"][0].responsible_id == staff["ivanova"]  # "Иванова М.А."


async def test_reimport_changes_nothing(db: Database, settings: Settings) -> None:
    await _employees(db)
    first = await _import(db, settings, "clients", "clients-1c-cp1251.csv")
    again = await _import(db, settings, "clients", "clients-1c-cp1251.csv")
    assert (again.imported, again.updated, again.unchanged) == (0, 0, first.imported)
    async with db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Client)) == 6
        assert await session.scalar(select(func.count()).select_from(ClientPhone)) == 9


async def test_changed_fields_updated_and_phones_merged(db: Database, settings: Settings, tmp_path: Path) -> None:
    staff = await _employees(db)
    await _import(db, settings, "clients", "clients-1c-cp1251.csv")
    changed = tmp_path / "changed.csv"
    changed.write_text("Код;Наименование;Телефон;Ответственный\n"
                       "000000001;Иван Петрович Петров;+7 916 123 45 67, моб. +7 916 999 00 00;petrov\n"
                       "000000003;АО \"Вектор\";;\n"
                       "000000100;Новый клиент;+7 916 100 00 00;\n", encoding="utf-8")
    report = await _import(db, settings, "clients", changed)
    assert (report.imported, report.updated, report.unchanged, report.skipped) == (1, 1, 1, 0)
    clients = await _clients(db)
    client, phones = clients["000000001"]
    assert client.name == "Иван Петрович Петров"
    assert client.responsible_id == staff["petrov"]
    assert phones == ["+79161234567", "+79169990000"]  # the known one not added twice
    async with db.sessions() as session:
        added = (await session.execute(select(ClientPhone.raw, ClientPhone.label)
                                       .where(ClientPhone.e164 == "+79169990000"))).one()
    assert tuple(added) == ("моб. +7 916 999 00 00", "моб.")
    assert clients["000000003"][1] == ["+74991234567", "+79160001122"]  # empty cell erases nothing


async def test_utf8_bom_spreadsheet_with_statuses(db: Database, settings: Settings) -> None:
    await _employees(db)
    report = await _import(db, settings, "clients", "clients-excel-utf8-bom.csv")
    assert report.imported == 4
    assert [str(e) for e in report.errors] == ["line 5: status 'maybe' is not one of new, regular"]
    assert "line 4: phone '12345' is not a readable number: kept as written" in [str(w) for w in report.warnings]
    clients = await _clients(db)
    assert clients["X-1"][0].company == "Vector, JSC"
    assert clients["X-1"][1] == ["+79161112233", "+74951112233"]
    orlov = clients["X-2"][0]
    assert (orlov.status, orlov.status_source) == ("regular", "manual")
    assert clients["X-5"][1] == ["+79167778899"]


async def test_clients_without_code_matched_by_name(db: Database, settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "sheet.csv"
    path.write_text("ФИО,Телефон\nОльга Белова,+7 916 000 00 01\n", encoding="utf-8")
    await _import(db, settings, "clients", path)
    path.write_text("ФИО,Телефон\nОльга Белова,+7 916 000 00 02\n", encoding="utf-8")
    report = await _import(db, settings, "clients", path)
    assert (report.imported, report.updated) == (0, 1)
    assert (await _clients(db))["Ольга Белова"][1] == ["+79160000001", "+79160000002"]


async def _company(db: Database, settings: Settings) -> dict[str, int]:
    staff = await _employees(db)
    await _import(db, settings, "clients", "clients-1c-cp1251.csv")
    return staff


async def test_agreements_file(db: Database, settings: Settings) -> None:
    staff = await _company(db, settings)
    report = await _import(db, settings, "agreements", "agreements-1c-cp1251.csv")
    assert report.imported == 4
    assert [str(e) for e in report.errors] == [
        "line 4: unknown client '000000099' (no client with that code or name; import clients first)",
        "line 5: amount 'abc' is not a number",
        "line 8: empty title",
        "line 9: status 'может быть' is not one of cancelled, lost, open, won",
    ]
    async with db.sessions() as session:
        rows = {a.external_id: a for a in (await session.scalars(select(Agreement))).all()}
        clients = {c.external_id: c.id for c in (await session.scalars(select(Client))).all()}
    won = rows["Д-001"]
    assert (won.status, won.amount, won.currency, won.made_by_id) == ("won", Decimal("150000.00"), "RUB",
                                                                      staff["ivanova"])
    assert won.terms == "Оплата 100%; доставка за счёт поставщика"
    assert won.closed_at == dt.datetime(2026, 1, 19, 21, 0, tzinfo=dt.UTC)
    assert rows["Д-002"].amount == Decimal("1234567.89") and rows["Д-002"].status == "open"
    assert rows["Д-005"].status == "lost" and rows["Д-005"].closed_at is not None  # closed when it was lost
    assert rows["Д-006"].client_id == clients["000000001"]  # referenced by the client's name
    again = await _import(db, settings, "agreements", "agreements-1c-cp1251.csv")
    assert (again.imported, again.updated, again.unchanged) == (0, 0, 4)


async def test_payments_unknown_client_reported(db: Database, settings: Settings) -> None:
    await _company(db, settings)
    await _import(db, settings, "agreements", "agreements-1c-cp1251.csv")
    report = await _import(db, settings, "payments", "payments-utf8.csv")
    assert report.imported == 5
    assert [str(e) for e in report.errors] == [
        "line 5: unknown client '000000042' (no client with that code or name; import clients first)",
        "line 6: amount 'abc' is not a number",
        "line 7: paid '31.02.2026' is not a date like 31.12.2026 or 2026-12-31",
    ]
    assert [str(w) for w in report.warnings] == ["line 4: unknown agreement 'Д-999': stored without it"]
    async with db.sessions() as session:
        payments = {p.external_id: p for p in (await session.scalars(select(Payment))).all()}
        agreement_id = await session.scalar(select(Agreement.id).where(Agreement.external_id == "Д-001"))
    assert payments["P-1"].agreement_id == agreement_id
    assert payments["P-2"].paid_at == dt.datetime(2026, 3, 5, 11, 30, tzinfo=dt.UTC)
    twins = [p for key, p in payments.items() if (key or "").startswith("auto:")]
    assert len(twins) == 2 and all(p.amount == Decimal("700.00") for p in twins)
    again = await _import(db, settings, "payments", "payments-utf8.csv")
    assert (again.imported, again.updated, again.unchanged) == (0, 0, 5)


async def test_promises_and_receivables(db: Database, settings: Settings) -> None:
    staff = await _company(db, settings)
    await _import(db, settings, "agreements", "agreements-1c-cp1251.csv")
    promises = await _import(db, settings, "promises", "promises-excel-utf16.txt")
    assert promises.imported == 2
    assert [str(e) for e in promises.errors] == ["line 4: empty text",
                                                 "line 5: due 'не знаю' is not a date like 31.12.2026 or 2026-12-31"]
    receivables = await _import(db, settings, "receivables", "receivables-utf8.csv")
    assert receivables.imported == 2
    assert [str(e) for e in receivables.errors] == [
        "line 4: amount '-5' is negative",
        "line 5: settled '01.02.2026' is before issued '01.03.2026'",
    ]
    async with db.sessions() as session:
        rows = (await session.scalars(select(Promise).order_by(Promise.id))).all()
        open_receivable = await session.scalar(select(Receivable).where(Receivable.external_id == "С-2"))
    assert [(p.text, p.status, p.made_by_id) for p in rows] == [
        ("Перезвонить по КП", "open", staff["ivanova"]), ("Выслать договор", "kept", staff["petrov"])]
    assert rows[0].due_at == dt.datetime(2026, 11, 25, 20, 59, 59, tzinfo=dt.UTC)  # end of that day
    assert rows[1].closed_at is not None
    assert open_receivable is not None and open_receivable.settled_at is None
    assert open_receivable.agreement_id is not None


async def test_unreadable_file_and_all_lines_bad(db: Database, settings: Settings, tmp_path: Path) -> None:
    missing = await _import(db, settings, "clients", tmp_path / "nope.csv")
    assert not missing.ok and "cannot read the file" in missing.summary()
    bad = tmp_path / "bad.csv"
    bad.write_text("name;phones\n;+7 916 000 00 01\n", encoding="utf-8")
    report = await _import(db, settings, "clients", bad)
    assert not report.ok and report.fatal == "no line could be imported"
    header_only = tmp_path / "header.csv"
    header_only.write_text("name;phones\n", encoding="utf-8")
    assert (await _import(db, settings, "clients", header_only)).fatal == "no data lines after the header"


async def test_chunk_refused_by_the_database_loses_only_the_bad_line(
        db: Database, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If the database refuses a chunk (a constraint, a concurrent edit), the chunk is
    retried line by line: the other lines go in and the refused one is reported."""
    from sqlalchemy.exc import IntegrityError

    from callpop.store.imports.clients import store_clients as original

    async def refusing(session: AsyncSession, lines: list[ClientLine], ctx: ImportContext) -> ChunkResult:
        if any(line.name == "Client 13" for line in lines):
            raise IntegrityError("INSERT INTO clients", {}, Exception("UNIQUE constraint failed: clients.x"))
        return await original(session, lines, ctx)

    monkeypatch.setattr("callpop.store.imports.importer.store_clients", refusing)
    path = tmp_path / "many.csv"
    lines = ["code;name;phones"] + [f"C{i};Client {i};+7 916 {i:03d} 00 00" for i in range(25)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = await import_file(db, "clients", path, settings, now=NOW, chunk_size=10)
    assert (report.imported, report.skipped) == (24, 1)
    assert str(report.errors[0]) == "line 15: the database refused the line: UNIQUE constraint failed: clients.x"
    assert len(await _clients(db)) == 24


@pytest.mark.parametrize("kind", ["clients", "payments"])
def test_cli_reports_and_exit_codes(kind: str, db_settings: Settings, tmp_path: Path) -> None:
    import subprocess
    import sys

    settings_file = tmp_path / "settings.toml"
    settings_file.write_text(f'[database]\nurl = "{db_settings.database.url}"\n', encoding="utf-8")
    source = FIXTURES / ("clients-1c-cp1251.csv" if kind == "clients" else "payments-utf8.csv")
    copy = tmp_path / source.name
    shutil.copyfile(source, copy)
    run = subprocess.run([sys.executable, "-m", "callpop", "--settings", str(settings_file), "import", kind,
                          str(copy)], capture_output=True, text=True, timeout=60, check=False)
    if kind == "clients":
        assert run.returncode == 0, run.stderr
        assert run.stdout.startswith("clients: imported 6, updated 0, unchanged 0, skipped 2 (line 5: empty name")
        assert "line 5: empty name (skipped)" in run.stderr
    else:  # no clients yet: every line fails
        assert run.returncode == 1
        assert "line 2: unknown client '000000001'" in run.stderr
        assert "no line could be imported" in run.stderr


async def test_payments_make_a_client_regular_by_the_rule(db: Database, settings: Settings, tmp_path: Path) -> None:
    """Two paid agreements in the last 12 months make a regular client ([kpi] rule)."""
    await _company(db, settings)
    await _import(db, settings, "agreements", "agreements-1c-cp1251.csv")
    await _import(db, settings, "payments", "payments-utf8.csv")  # pays Д-001 only

    async def status() -> str:
        async with db.sessions() as session:
            value = await session.scalar(select(Client.status).where(Client.external_id == "000000001"))
        return str(value)

    assert await status() == "new"
    second = tmp_path / "second.csv"
    second.write_text("Номер;Клиент;Договор;Сумма;Дата\nP-100;000000001;Д-006;20000;10.02.2026\n", encoding="utf-8")
    report = await _import(db, settings, "payments", second)
    assert report.imported == 1 and not report.warnings
    assert await status() == "regular"


def test_database_failure_stops_the_import_with_a_clear_message(
        db_settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A failing database (locked, gone) is not blamed on the lines: the import stops, exit 2."""
    import argparse

    from sqlalchemy.exc import OperationalError

    from callpop.store.imports.importer import main

    calls: list[int] = []

    async def failing(session: AsyncSession, lines: list[ClientLine], ctx: ImportContext) -> ChunkResult:
        calls.append(len(lines))
        raise OperationalError("INSERT INTO clients", {}, Exception("database is locked"))

    monkeypatch.setattr("callpop.store.imports.importer.store_clients", failing)
    code = main(argparse.Namespace(kind="clients", file=str(FIXTURES / "clients-1c-cp1251.csv")), db_settings)
    assert code == 2
    assert calls == [6]  # not retried line by line
    assert "database error, import stopped: database is locked" in capsys.readouterr().err


async def test_unquoted_delimiter_in_a_company_skips_the_line(db: Database, settings: Settings,
                                                               tmp_path: Path) -> None:
    path = tmp_path / "1c.csv"
    path.write_bytes("Код;Наименование;Компания;Телефон\n"
                     "200;Анна Смирнова;ООО Ромашка; филиал;8 916 111-22-33\n"
                     "201;Борис Орлов;ООО Вектор;8 916 222-33-44\n".encode("cp1251"))
    report = await _import(db, settings, "clients", path)
    assert (report.imported, report.skipped) == (1, 1)
    assert [str(e) for e in report.errors] == ["line 2: 5 cells, the header has 4 (an unquoted delimiter?)"]
    clients = await _clients(db)
    assert "200" not in clients
    orlov, phones = clients["201"]
    assert (orlov.company, phones) == ("ООО Вектор", ["+79162223344"])
