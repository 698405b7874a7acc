"""A copy of the directory for the dialplan's memory, as the reading process
(store/caller_index_read.py) hands it to the server (store/caller_index.py): the numbers'
keys, the parts, and their bytes on a pipe. Nothing here imports more than the standard
library, so the reading process starts in a few tens of milliseconds."""

from __future__ import annotations

import asyncio
import json
from array import array
from dataclasses import dataclass, field
from typing import BinaryIO, TypeVar

__all__ = ["Parts", "e164_code", "read_parts", "tail_code", "write_parts"]

P = TypeVar("P", bound="Parts")


def tail_code(tail: str) -> int | None:
    """``int("1" + digits)``: keeps leading zeros and length apart; None for anything but
    1-17 ASCII digits."""
    return int("1" + tail) if 0 < len(tail) <= 17 and tail.isascii() and tail.isdigit() else None


def e164_code(e164: str) -> int | None:
    digits = e164[1:]
    return (int("1" + digits) if e164[:1] == "+" and 0 < len(digits) <= 17 and digits.isascii() and digits.isdigit()
            else None)


@dataclass(slots=True)
class Parts:
    """A copy's contents: numbers sorted for binary search, clients by id."""

    tails: array[int] = field(default_factory=lambda: array("q"))
    tail_clients: array[int] = field(default_factory=lambda: array("q"))
    tail_e164s: array[int] = field(default_factory=lambda: array("q"))  # 0: no E.164
    e164s: array[int] = field(default_factory=lambda: array("q"))
    e164_clients: array[int] = field(default_factory=lambda: array("q"))
    # numbers the arrays cannot hold (not plain digits): by text, with (client, e164)
    odd_tails: dict[str, list[tuple[int, str | None]]] = field(default_factory=dict)
    odd_e164s: dict[str, list[int]] = field(default_factory=dict)
    ids: array[int] = field(default_factory=lambda: array("q"))
    name_ends: array[int] = field(default_factory=lambda: array("q"))
    names: bytes = b""  # UTF-8, one after the other; name_ends are byte offsets
    company_ends: array[int] = field(default_factory=lambda: array("q"))
    companies: bytes = b""
    no_company: bytearray = field(default_factory=bytearray)
    regular: bytearray = field(default_factory=bytearray)
    responsible: array[int] = field(default_factory=lambda: array("q"))  # -1: nobody
    extensions: dict[int, tuple[str, ...]] = field(default_factory=dict)  # active employees only
    built_in: float = 0.0

    def nbytes(self) -> int:
        return sum(a.itemsize * len(a) for a in _arrays(self)) + sum(len(b) for b in _blobs(self))


_ARRAYS = ("tails", "tail_clients", "tail_e164s", "e164s", "e164_clients", "ids", "name_ends", "company_ends",
           "responsible")
_BLOBS = ("names", "companies", "no_company", "regular")


def _arrays(parts: Parts) -> list[array[int]]:
    return [getattr(parts, name) for name in _ARRAYS]


def _blobs(parts: Parts) -> list[bytes | bytearray]:
    return [getattr(parts, name) for name in _BLOBS]


def write_parts(parts: Parts, out: BinaryIO) -> None:
    """A header line (JSON: counts and sizes), the arrays' and blobs' bytes (this
    machine's layout: reader and server are one machine), then the small rest as JSON."""
    rest = json.dumps({"odd_tails": parts.odd_tails, "odd_e164s": parts.odd_e164s,
                       "extensions": {str(k): v for k, v in parts.extensions.items()}}).encode()
    header = {"arrays": [len(a) for a in _arrays(parts)], "blobs": [len(b) for b in _blobs(parts)],
              "rest": len(rest), "built_in": parts.built_in}
    out.write(json.dumps(header).encode() + b"\n")
    for a in _arrays(parts):
        out.write(a.tobytes())
    for b in _blobs(parts):
        out.write(bytes(b))
    out.write(rest)


async def read_parts(stream: asyncio.StreamReader, into: P) -> P:
    """What ``write_parts`` wrote, into *into*, a piece at a time as it arrives."""
    header = json.loads(await stream.readline())
    into.built_in = float(header["built_in"])
    for name, count in zip(_ARRAYS, header["arrays"], strict=True):
        values = array("q")
        values.frombytes(await stream.readexactly(count * values.itemsize))
        setattr(into, name, values)
    for name, size in zip(_BLOBS, header["blobs"], strict=True):
        data = await stream.readexactly(size)
        setattr(into, name, data if name in ("names", "companies") else bytearray(data))
    rest = json.loads(await stream.readexactly(header["rest"]))
    into.odd_tails = {k: [(c, e) for c, e in v] for k, v in rest["odd_tails"].items()}
    into.odd_e164s = rest["odd_e164s"]
    into.extensions = {int(k): tuple(v) for k, v in rest["extensions"].items()}
    return into
