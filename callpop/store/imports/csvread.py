"""Reading the CSV files people export from 1C and spreadsheets.

Such files arrive in Windows-1251 or UTF-8 (Excel adds a BOM; its "Unicode text" is
UTF-16 with tabs), separated by ``;`` (Russian Excel and 1C) or ``,`` or tabs, with
Russian or English column names in any case. This module turns the bytes into
``(line number, {field: text})`` pairs and knows nothing of the database, so every rule
here is testable from bytes alone.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from callpop.store.errors import StoreError

__all__ = [
    "HEADERS",
    "REQUIRED",
    "CsvFile",
    "FileError",
    "Row",
    "decode",
    "normalise_header",
    "read_csv",
    "sniff_delimiter",
]


class FileError(StoreError, ValueError):
    """The file as a whole cannot be imported; the message says why and what to do."""


# Accepted column names per file kind, after normalise_header(). Several columns may map
# to "phones" (Телефон, Мобильный): their numbers are merged.
_COMMON_AGREEMENT_REF = ("agreement", "agreement id", "agreement code", "договор", "код договора",
                         "номер договора")
_COMMON_CLIENT_REF = ("client", "client id", "client external id", "client code", "клиент", "код клиента",
                      "контрагент", "код контрагента", "покупатель")
_COMMON_EXTERNAL_ID = ("external id", "id", "code", "код", "внешний код", "идентификатор", "ид", "guid",
                       "номер", "number", "№", "no")
_COMMON_MADE_BY = ("made by", "manager", "employee", "менеджер", "ответственный", "сотрудник", "автор")
_COMMON_AMOUNT = ("amount", "sum", "сумма", "сумма руб", "сумма документа")
_COMMON_CURRENCY = ("currency", "валюта")

HEADERS: dict[str, dict[str, tuple[str, ...]]] = {
    "clients": {
        "external_id": (*_COMMON_EXTERNAL_ID, "код клиента", "код контрагента"),
        "name": ("name", "client", "full name", "наименование", "имя", "клиент", "фио", "контрагент",
                 "название", "полное наименование"),
        "company": ("company", "organisation", "organization", "компания", "организация", "фирма"),
        "phones": ("phones", "phone", "phone number", "tel", "mobile", "телефон", "телефоны", "тел",
                   "номер телефона", "мобильный", "мобильный телефон", "рабочий телефон"),
        "manager": ("manager", "responsible", "ответственный", "менеджер", "ответственный менеджер",
                    "основной менеджер"),
        "status": ("status", "статус"),
    },
    "agreements": {
        "external_id": (*_COMMON_EXTERNAL_ID, "номер договора", "код договора", "номер сделки"),
        "client": _COMMON_CLIENT_REF,
        "title": ("title", "subject", "название", "наименование", "предмет", "сделка", "договор"),
        "terms": ("terms", "description", "условия", "описание", "комментарий"),
        "amount": _COMMON_AMOUNT,
        "currency": _COMMON_CURRENCY,
        "status": ("status", "state", "статус", "состояние", "стадия"),
        "made_by": _COMMON_MADE_BY,
        "created": ("created", "created at", "date", "дата", "дата договора", "дата создания"),
        "closed": ("closed", "closed at", "дата закрытия", "дата завершения"),
    },
    "promises": {
        "external_id": (*_COMMON_EXTERNAL_ID, "код обещания"),
        "client": _COMMON_CLIENT_REF,
        "text": ("text", "promise", "обещание", "текст", "что обещано", "содержание"),
        "due": ("due", "due at", "deadline", "срок", "дата исполнения", "выполнить до", "до"),
        "status": ("status", "статус", "состояние"),
        "made_by": _COMMON_MADE_BY,
        "created": ("created", "created at", "date", "дата", "дата создания"),
        "closed": ("closed", "closed at", "дата закрытия", "дата выполнения"),
    },
    "payments": {
        "external_id": (*_COMMON_EXTERNAL_ID, "номер платежа", "номер документа"),
        "client": _COMMON_CLIENT_REF,
        "agreement": _COMMON_AGREEMENT_REF,
        "amount": _COMMON_AMOUNT,
        "currency": _COMMON_CURRENCY,
        "paid": ("paid", "paid at", "date", "дата", "дата оплаты", "дата платежа"),
    },
    "receivables": {
        "external_id": (*_COMMON_EXTERNAL_ID, "номер счета", "номер документа"),
        "client": _COMMON_CLIENT_REF,
        "agreement": _COMMON_AGREEMENT_REF,
        "amount": _COMMON_AMOUNT,
        "currency": _COMMON_CURRENCY,
        "issued": ("issued", "issued at", "date", "дата", "дата счета", "дата выставления"),
        "due": ("due", "due at", "срок оплаты", "оплатить до", "срок"),
        "settled": ("settled", "settled at", "paid", "дата погашения", "погашено", "дата оплаты", "оплачено"),
    },
}

REQUIRED: dict[str, tuple[str, ...]] = {
    "clients": ("name",),
    "agreements": ("client", "title"),
    "promises": ("client", "text"),
    "payments": ("client", "amount", "paid"),
    "receivables": ("client", "amount", "issued"),
}

_SPACES = re.compile(r"[\s_\-]+")
_MAX_FILE_BYTES = 1 << 30
_HEADER_SEARCH_LINES = 10  # a report's title lines above the table
_MAX_ROW_LINES = 50  # a row spanning more lines than this is a missing quote, not a long comment


def normalise_header(name: str) -> str:
    """``" Код_клиента:"`` → ``"код клиента"``: case, ё, separators and trailing marks ignored."""
    text = name.replace("\ufeff", "").strip().casefold().replace("ё", "е")
    text = text.strip(" :*.")
    return _SPACES.sub(" ", text).strip()


def decode(data: bytes) -> tuple[str, str]:
    """(text, encoding name). Strict UTF-8 first: Windows-1251 decodes almost any bytes,
    so trying it first would turn every UTF-8 file into mojibake."""
    if data.startswith(b"PK\x03\x04") or data.startswith(b"\xd0\xcf\x11\xe0"):
        raise FileError("this is an Excel workbook, not CSV: save it as "
                        "\"CSV (разделители - запятые)\" or \"CSV UTF-8\" and import that file")
    if data.startswith(codecs.BOM_UTF16_LE) or data.startswith(codecs.BOM_UTF16_BE):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as exc:
            raise FileError(f"file starts like UTF-16 but cannot be read as it: {exc.reason}") from None
    if b"\x00" in data[:4096]:
        raise FileError("file contains NUL bytes: it is not a text (CSV) file")
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    if _mostly_utf8(data):
        # a UTF-8 export with a few foreign bytes (a line pasted from a Windows-1251 file):
        # reading it all as Windows-1251 would garble every line, so only the bad bytes go
        text = data.decode("utf-8-sig", errors="replace")
        return text, f"utf-8 ({text.count(chr(0xFFFD))} undecodable bytes: their lines are skipped)"
    try:
        return data.decode("cp1251"), "windows-1251"
    except UnicodeDecodeError as exc:
        raise FileError(f"file is neither UTF-8 nor Windows-1251 (byte 0x{data[exc.start]:02x} "
                        f"at offset {exc.start}): save it as CSV UTF-8") from None


def _mostly_utf8(data: bytes) -> bool:
    """True when most non-ASCII bytes form valid UTF-8 Cyrillic pairs (D0/D1 + 80-BF): in
    real Windows-1251 text such pairs are rare (they would be "Р" or "С" before a symbol)."""
    high = sum(1 for b in data if b >= 0x80)
    pairs = len(_UTF8_CYRILLIC.findall(data))
    return high > 0 and 2 * pairs >= 0.8 * high


_UTF8_CYRILLIC = re.compile(rb"[\xd0\xd1][\x80-\xbf]")
_DELIMITERS = ";,\t"


def _score(header: str, delimiter: str, aliases: Mapping[str, tuple[str, ...]]) -> int:
    cells = next(csv.reader([header], delimiter=delimiter), [])
    known = {alias for names in aliases.values() for alias in names}
    return sum(1 for cell in cells if normalise_header(cell) in known)


def sniff_delimiter(text: str, aliases: Mapping[str, tuple[str, ...]]) -> str:
    """The delimiter: csv.Sniffer's guess when it splits the header into known column names,
    else the one that recognises the most columns (Sniffer is easily fooled by commas inside
    quoted Russian company names)."""
    header = text.split("\n", 1)[0].rstrip("\r")
    sample = "\n".join(text.splitlines()[:20])
    candidates: list[str] = []
    try:
        candidates.append(csv.Sniffer().sniff(sample, delimiters=_DELIMITERS).delimiter)
    except csv.Error:
        pass
    candidates += [d for d in _DELIMITERS if d not in candidates]
    scores = {d: _score(header, d, aliases) for d in candidates}
    best = max(scores.values())
    if best == 0:
        return max(candidates, key=header.count)
    return next(d for d in candidates if scores[d] == best)


@dataclass(frozen=True, slots=True)
class Row:
    """One data row: the physical line it starts on, field -> stripped text, or why it
    could not be read at all."""

    line: int
    values: dict[str, str]
    error: str | None = None


@dataclass(slots=True)
class CsvFile:
    """A decoded file with its columns mapped to field names."""

    kind: str
    encoding: str
    delimiter: str
    columns: dict[int, str]  # column index -> field name
    ignored: list[str] = field(default_factory=list)
    header_line: int = 1
    width: int = 0  # cells in the header; 0 = not checked
    _lines: Iterator[tuple[int, list[str] | str]] | None = None

    def rows(self) -> Iterator[Row]:
        """The data rows once. Blank lines are skipped; several columns for one field
        (two phone columns) are joined with ";"."""
        if self._lines is None:
            raise RuntimeError("CsvFile.rows() can be iterated once")
        lines, self._lines = self._lines, None
        for line_no, cells in lines:
            if isinstance(cells, str):
                yield Row(line_no, {}, cells)
                continue
            if not any(c.strip() for c in cells):
                continue
            if any("\ufffd" in c for c in cells) and self.encoding != "utf-16":
                yield Row(line_no, {}, "the line has bytes that are not UTF-8 (from a Windows-1251 file?): "
                                       "fix or re-save it as UTF-8")
                continue
            if self.width and _filled_width(cells) > self.width:
                # an unquoted delimiter inside a cell shifts every cell after it: importing
                # the line would put the wrong text in the wrong fields and drop the last ones
                yield Row(line_no, {}, f"{_filled_width(cells)} cells, the header has {self.width} "
                                       "(an unquoted delimiter?)")
                continue
            values: dict[str, str] = {}
            for index, name in self.columns.items():
                value = cells[index].strip() if index < len(cells) else ""
                if value:
                    values[name] = f"{values[name]};{value}" if name in values else value
            yield Row(line_no, values)


def _filled_width(cells: list[str]) -> int:
    """The number of cells up to the last non-blank one (a trailing delimiter, as some
    spreadsheets save, loses nothing)."""
    width = len(cells)
    while width and not cells[width - 1].strip():
        width -= 1
    return width


def _examples(aliases: tuple[str, ...]) -> list[str]:
    """Two English and two Russian names a column may have, for the error message."""
    latin = [a for a in aliases if a.isascii()][:2]
    return latin + [a for a in aliases if not a.isascii()][:2]


def _map_header(header: list[str], aliases: Mapping[str, tuple[str, ...]]) -> tuple[dict[int, str], list[str]]:
    lookup = {alias: name for name, names in aliases.items() for alias in names}
    columns: dict[int, str] = {}
    ignored: list[str] = []
    for index, cell in enumerate(header):
        name = lookup.get(normalise_header(cell))
        if name is None or (name in columns.values() and name != "phones"):
            if cell.strip():
                ignored.append(cell.strip())
            continue
        columns[index] = name
    return columns, ignored


def _after_line(text: str, skip: int) -> str | None:
    """*text* from its line number *skip* + 1 on (None when it has fewer lines)."""
    position = 0
    for _ in range(skip):
        position = text.find("\n", position) + 1
        if position == 0:
            return None
    return text[position:]


def read_csv(data: bytes, kind: str) -> CsvFile:
    """Decode *data*, find the header and the delimiter; FileError when that fails.

    The header is the first line, or one of the next few when the first ones are a report's
    title (1C saves "Список контрагентов" and the date above the table)."""
    if kind not in HEADERS:
        raise FileError(f"unknown file kind {kind!r} (known: {', '.join(HEADERS)})")
    if len(data) > _MAX_FILE_BYTES:
        raise FileError("file is larger than 1 GiB: split it")
    text, encoding = decode(data)
    if not text.strip():
        raise FileError("file is empty: expected a header line and data lines")
    aliases = HEADERS[kind]
    first_error: FileError | None = None
    for skip in range(_HEADER_SEARCH_LINES):
        body = _after_line(text, skip)
        if body is None or not body.strip():
            break
        delimiter = sniff_delimiter(body, aliases)
        reader = csv.reader(io.StringIO(body, newline=""), delimiter=delimiter)
        try:
            header = next(reader)
        except csv.Error as exc:
            first_error = first_error or FileError(f"line {skip + 1}: cannot read the header: {exc}")
            continue
        columns, ignored = _map_header(header, aliases)
        missing = [name for name in REQUIRED[kind] if name not in columns.values()]
        if not missing:
            return CsvFile(kind=kind, encoding=encoding, delimiter=delimiter, columns=columns, ignored=ignored,
                           header_line=skip + 1, width=len(header), _lines=_physical_lines(reader, skip))
        if first_error is None:
            accepted = "; ".join(f"{name}: {', '.join(repr(a) for a in _examples(aliases[name]))}"
                                 for name in missing)
            first_error = FileError(f"line 1: no column for {', '.join(missing)} (accepted names, e.g. "
                                    f"{accepted}); header found: {', '.join(h.strip() for h in header)!s} "
                                    f"— see docs/import.md")
    assert first_error is not None
    raise first_error


def _physical_lines(reader: Iterator[list[str]], skipped: int) -> Iterator[tuple[int, list[str] | str]]:
    """Rows with the number of the physical line they start on (a quoted cell may hold
    newlines, so a row can span lines; *skipped* title lines come before the header); a
    row the csv module rejects comes as its reason."""
    line_num = getattr(reader, "line_num", 1)
    while True:
        start = line_num + 1 + skipped
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            line_num = getattr(reader, "line_num", start)
            yield start, f"cannot read the line as CSV: {exc}"
            continue
        line_num = getattr(reader, "line_num", start)
        end = line_num + skipped
        if end - start >= _MAX_ROW_LINES:
            yield start, (f"a quoted cell opened on this line runs to line {end}: "
                          f"a closing quote (\") is probably missing; lines {start}-{end} skipped")
            continue
        yield start, cells
