"""Reading messy CSV exports without a database: encodings, delimiters, header names,
phones in one cell, amounts and dates as 1C writes them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from callpop.store.imports.csvfields import (
    AGREEMENT_STATUSES,
    LineError,
    parse_amount,
    parse_currency,
    parse_moment,
    parse_status,
    read_phone,
)
from callpop.store.imports.csvread import FileError, decode, read_csv
from tests.support import paths

FIXTURES = paths.FIXTURES / "import"
MSK = ZoneInfo("Europe/Moscow")


def test_windows_1251_with_semicolons_and_quoted_cells() -> None:
    csv_file = read_csv((FIXTURES / "clients-1c-cp1251.csv").read_bytes(), "clients")
    assert (csv_file.encoding, csv_file.delimiter) == ("windows-1251", ";")
    assert csv_file.ignored == ["ИНН", "Адрес"]
    rows = list(csv_file.rows())
    assert rows[0].line == 2
    assert rows[0].values == {"external_id": "000000001", "name": "Иван Петров",
                              "phones": "+7 916 123-45-67", "manager": "Иванова Мария"}
    assert rows[1].values["name"] == "ООО «Ромашка»"
    assert rows[2].values["name"] == 'АО "Вектор"'


def test_line_numbers_count_physical_lines_of_multiline_cells() -> None:
    rows = list(read_csv((FIXTURES / "clients-1c-cp1251.csv").read_bytes(), "clients").rows())
    by_code = {r.values["external_id"]: r for r in rows}
    assert by_code["000000005"].line == 6
    assert by_code["000000005"].values["phones"] == "+7 926 111-11-11\n+7 926 222-22-22"
    assert by_code["000000006"].line == 8  # the cell above spans lines 6 and 7


def test_utf8_bom_with_commas_and_english_headers() -> None:
    csv_file = read_csv((FIXTURES / "clients-excel-utf8-bom.csv").read_bytes(), "clients")
    assert (csv_file.encoding, csv_file.delimiter) == ("utf-8", ",")
    rows = list(csv_file.rows())
    assert rows[0].values["company"] == "Vector, JSC"
    assert [r.line for r in rows] == [2, 3, 4, 5, 7]  # the blank line 6 is skipped


def test_excel_unicode_text_is_utf16_with_tabs() -> None:
    csv_file = read_csv((FIXTURES / "promises-excel-utf16.txt").read_bytes(), "promises")
    assert (csv_file.encoding, csv_file.delimiter) == ("utf-16", "\t")
    assert next(csv_file.rows()).values["text"] == "Перезвонить по КП"


def test_utf8_is_tried_before_windows_1251() -> None:
    text = "Наименование;Телефон\nЁжиков;+79160000000\n"
    assert decode(text.encode("utf-8")) == (text, "utf-8")
    assert decode(text.encode("cp1251")) == (text, "windows-1251")


def test_utf8_with_a_stray_windows_1251_line_keeps_the_good_lines_readable() -> None:
    data = ("Наименование;Телефон\nЁжиков Пётр;+79160000001\n".encode()
            + "Сидоров;+79160000002\n".encode("cp1251")
            + "Иванов Иван;+79160000003\n".encode())
    _text, encoding = decode(data)
    assert encoding.startswith("utf-8 (7 undecodable bytes")
    rows = list(read_csv(data, "clients").rows())
    assert [r.values.get("name") for r in rows] == ["Ёжиков Пётр", None, "Иванов Иван"]
    assert rows[1].line == 3 and rows[1].error is not None and "not UTF-8" in rows[1].error
    assert decode("Сидоров Пётр;Шапка\n".encode("cp1251"))[1] == "windows-1251"


@pytest.mark.parametrize(("data", "expected"), [
    (b"PK\x03\x04rest-of-zip", "Excel workbook"),
    (b"", "empty"),
    (b"foo;bar\n1;2\n", "no column for name"),
])
def test_unusable_files_say_why(data: bytes, expected: str) -> None:
    with pytest.raises(FileError, match=expected):
        read_csv(data, "clients")


def test_missing_column_message_lists_accepted_names() -> None:
    with pytest.raises(FileError) as info:
        read_csv("Код;Клиент;Сумма\n1;2;3\n".encode(), "payments")
    assert "paid" in str(info.value) and "docs/import.md" in str(info.value)


def test_delimiter_found_even_when_sniffer_is_fooled_by_commas_in_names() -> None:
    data = 'Наименование;Телефон\n"Рога, копыта и Ко, ООО";+7 916 000 00 01\n'.encode()
    csv_file = read_csv(data, "clients")
    assert csv_file.delimiter == ";"
    assert next(csv_file.rows()).values["name"] == "Рога, копыта и Ко, ООО"


def test_two_phone_columns_are_merged() -> None:
    data = "name;Телефон;Мобильный\nA;+7 495 111 22 33;+7 916 111 22 33\n".encode()
    row = next(read_csv(data, "clients").rows())
    assert row.values["phones"] == "+7 495 111 22 33;+7 916 111 22 33"


@pytest.mark.parametrize(("piece", "e164", "label"), [
    ("моб. +7 916 123-45-67", "+79161234567", "моб."),
    ("8 (495) 765-43-21 (офис)", "+74957654321", "офис"),
    ("8 495 765-43-21 доб. 123", "+74957654321", "доб. 123"),
    ("Бухгалтерия: 8(499)123-45-67", "+74991234567", "Бухгалтерия"),
    ("+7 916 123 45 67", "+79161234567", None),
    ("тел. уточнить", None, None),
])
def test_words_around_a_number_become_its_label(piece: str, e164: str | None, label: str | None) -> None:
    entry = read_phone(piece, "RU", 7)
    assert (entry.raw, entry.key.e164, entry.label) == (piece, e164, label)


@pytest.mark.parametrize(("text", "expected"), [
    ("1 234,56", "1234.56"), ("1234.5", "1234.50"), ("1,234.56", "1234.56"), ("1.234,56", "1234.56"),
    ("150\u00a0000 руб.", "150000.00"), ("0", "0.00"), ("12 ₽", "12.00"),
])
def test_amounts_as_people_write_them(text: str, expected: str) -> None:
    assert parse_amount(text) == Decimal(expected)


@pytest.mark.parametrize(("text", "reason"), [
    ("abc", "amount 'abc' is not a number"), ("-5", "negative"), ("NaN", "not a number"),
    ("1e20", "too large"),
])
def test_bad_amounts_are_named(text: str, reason: str) -> None:
    with pytest.raises(LineError, match=reason):
        parse_amount(text)


def test_dates_in_company_time_zone() -> None:
    assert parse_moment("05.03.2026", "paid", MSK) == dt.datetime(2026, 3, 4, 21, 0, tzinfo=dt.UTC)
    assert parse_moment("05.03.2026 14:30", "paid", MSK) == dt.datetime(2026, 3, 5, 11, 30, tzinfo=dt.UTC)
    assert parse_moment("2026-03-05T14:30:00+00:00", "paid", MSK) == dt.datetime(2026, 3, 5, 14, 30,
                                                                                 tzinfo=dt.UTC)
    due = parse_moment("2026-03-05", "due", MSK, end_of_day=True)
    assert due == dt.datetime(2026, 3, 5, 20, 59, 59, tzinfo=dt.UTC)


@pytest.mark.parametrize("text", ["31.02.2026", "не знаю", "05.03.2026 25:00", "01.01.1900"])
def test_bad_dates_are_named(text: str) -> None:
    with pytest.raises(LineError, match=f"due {text!r}"):
        parse_moment(text, "due", MSK)


def test_statuses_and_currencies_in_russian() -> None:
    assert parse_status("Выигран", AGREEMENT_STATUSES, "status", "open") == "won"
    assert parse_status("", AGREEMENT_STATUSES, "status", "open") == "open"
    with pytest.raises(LineError, match="status 'может быть' is not one of cancelled, lost, open, won"):
        parse_status("может быть", AGREEMENT_STATUSES, "status", "open")
    assert [parse_currency(c) for c in ("руб.", "", "usd", "€")] == ["RUB", "RUB", "USD", "EUR"]
    with pytest.raises(LineError, match="currency"):
        parse_currency("рубли")


def test_every_accepted_column_name_is_documented() -> None:
    """docs/import.md is what users read: a name the code accepts must be findable there."""
    from callpop.store.imports.csvread import HEADERS

    doc = (paths.ROOT / "docs" / "import.md").read_text(encoding="utf-8").casefold().replace("_", " ")
    for kind, fields in HEADERS.items():
        assert f"## {kind}" in doc
        missing = [alias for aliases in fields.values() for alias in aliases if alias not in doc]
        assert not missing, f"{kind}: column names not in docs/import.md: {missing}"


def test_missing_closing_quote_is_reported_not_silently_swallowed() -> None:
    lines = ["name;phones", '"Broken quote;+7 916 000 00 01'] + [f"Client {i};+7 916 000 01 {i:02d}" for i in range(60)]
    rows = list(read_csv("\n".join(lines).encode(), "clients").rows())
    assert len(rows) == 1 and rows[0].line == 2
    assert rows[0].error is not None and "closing quote" in rows[0].error


@pytest.mark.parametrize(("text", "expected"), [
    ("5.3.2026", dt.datetime(2026, 3, 4, 21, 0, tzinfo=dt.UTC)),
    ("05.03.26", dt.datetime(2026, 3, 4, 21, 0, tzinfo=dt.UTC)),
    ("05/03/2026 9:05:30", dt.datetime(2026, 3, 5, 6, 5, 30, tzinfo=dt.UTC)),
    ("2026-03-05 14:30:00.000", dt.datetime(2026, 3, 5, 11, 30, tzinfo=dt.UTC)),
    ("2026-03-05T14:30", dt.datetime(2026, 3, 5, 11, 30, tzinfo=dt.UTC)),
    ("2026-03-05 14:30+00:00", dt.datetime(2026, 3, 5, 14, 30, tzinfo=dt.UTC)),
])
def test_date_forms_from_1c_and_spreadsheets(text: str, expected: dt.datetime) -> None:
    assert parse_moment(text, "paid", MSK) == expected


def test_report_title_lines_above_the_header_are_skipped() -> None:
    data = ("Список контрагентов\r\nДата формирования: 27.11.2026\r\n\r\n"
            "Код;Наименование;Телефон\r\n001;ООО «Ромашка»;+7 903 111-22-33\r\n").encode("cp1251")
    csv_file = read_csv(data, "clients")
    assert csv_file.header_line == 4
    rows = list(csv_file.rows())
    assert [(r.line, r.values["name"]) for r in rows] == [(5, "ООО «Ромашка»")]


def test_line_with_more_cells_than_the_header_is_refused_not_shifted() -> None:
    data = ("code,name,company,phones\n"
            "100,Анна,ООО Ромашка, филиал,89161112233\n"
            "101,Борис,ООО Вектор,89162223344\n"
            "102,Вера,,89163334455,\n").encode()  # a trailing delimiter loses nothing
    rows = list(read_csv(data, "clients").rows())
    assert [(r.line, r.error) for r in rows] == [
        (2, "5 cells, the header has 4 (an unquoted delimiter?)"), (3, None), (4, None)]
    assert rows[1].values == {"external_id": "101", "name": "Борис", "company": "ООО Вектор",
                              "phones": "89162223344"}
    assert rows[2].values["phones"] == "89163334455"
