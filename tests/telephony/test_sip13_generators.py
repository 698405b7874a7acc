"""The ``sip13-*`` streams are what their generators write (tests/fixtures/streams/
sip13_*.py, run by make_sip13_streams.py): a change to a generator that alters a stream
shows here, and so does a stream on disk that no generator writes any more."""

from __future__ import annotations

import importlib
import json
from types import ModuleType

import pytest

from tests.support.captures import STREAMS

MODULES = ("sip13_transfers", "sip13_queues", "sip13_forwarding", "sip13_click_to_dial")


@pytest.fixture
def generators(monkeypatch: pytest.MonkeyPatch) -> list[ModuleType]:
    monkeypatch.syspath_prepend(str(STREAMS))
    return [importlib.import_module(name) for name in MODULES]


def test_every_sip13_stream_is_regenerated_byte_identical(generators: list[ModuleType]) -> None:
    written: set[str] = set()
    for module in generators:
        for make in module.MADE:
            stream = make()
            assert stream.name not in written
            written.add(stream.name)
            text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in stream.records)
            assert text == (STREAMS / f"{stream.name}.jsonl").read_text(encoding="utf-8"), stream.name
    assert written == {p.stem for p in STREAMS.glob("sip13-*.jsonl")}
