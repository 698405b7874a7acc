"""AMI framing on bytes: what panoramisk 1.4 gets wrong and we must get right."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from panoramisk.ami_protocol import AMIProtocol

from callpop.telephony.amitext import iter_messages
from callpop.telephony.protocol import AmiFramer, parse_message
from tests.support.paths import FIXTURES

NEWCHANNEL = ("Event: Newchannel\r\nChannel: PJSIP/carrier-00000000\r\nCallerIDNum: +79161234567\r\n"
              "CallerIDName: Иван Петров\r\nUniqueid: 1795818936.0\r\nLinkedid: 1795818936.0\r\n\r\n").encode()
CAPTURES = sorted((FIXTURES / "ami").glob("*.ami")) + sorted((FIXTURES / "ami" / "pjsip").glob("*.ami"))


def _inside_a_character(data: bytes) -> int:
    cut = data.index("Иван".encode()) + 3
    assert 0x80 <= data[cut] < 0xC0  # a continuation byte: the cut is inside "в"
    return cut



def iter_blocks(data: bytes) -> Iterator[bytes]:
    """Whole messages of a complete capture, read in one go (the reference for the tests below)."""
    framer = AmiFramer()
    yield from framer.feed(data)
    if framer._pending.strip():
        yield framer._pending

def test_a_character_split_across_reads_survives() -> None:
    cut = _inside_a_character(NEWCHANNEL)
    framer = AmiFramer()
    assert framer.feed(NEWCHANNEL[:cut]) == []
    (block,) = framer.feed(NEWCHANNEL[cut:])
    assert parse_message(block.decode())["CallerIDName"] == "Иван Петров"


def test_panoramisk_alone_loses_it() -> None:
    """The gap we close: panoramisk decodes each read on its own with errors='ignore'."""
    seen: list[Any] = []

    class Factory:
        def dispatch(self, message: Any) -> None:
            seen.append(message)

    proto = AMIProtocol()
    proto.connection_made(None)
    proto.factory = Factory()
    proto.encoding = "utf8"
    cut = _inside_a_character(NEWCHANNEL)
    proto.data_received(NEWCHANNEL[:cut])
    proto.data_received(NEWCHANNEL[cut:])
    assert seen and seen[0]["CallerIDName"] != "Иван Петров"


def test_banner_split_across_reads_and_repeated_keys() -> None:
    framer = AmiFramer()
    assert framer.feed(b"Asterisk Call") == []
    blocks = framer.feed(b" Manager/11.0.0\r\nResponse: Success\r\nMessage: Authentication accepted\r\n\r\nEvent: Va")
    assert framer.version == "11.0.0"
    assert [parse_message(b.decode()) for b in blocks] == [
        {"Response": "Success", "Message": "Authentication accepted"}]
    (block,) = framer.feed(b"rSet\r\nVariable: A=1\r\nVariable: B=2\r\nVariable: C=\r\nAccountCode: \r\n\r\n")
    assert parse_message(block.decode()) == {"Event": "VarSet", "Variable": ["A=1", "B=2", "C="],
                                             "AccountCode": ""}
    assert framer.pending == 0


def test_byte_by_byte_reads_give_the_same_messages() -> None:
    data = (FIXTURES / "ami" / "pjsip" / "sip-09a-cid-cyrillic.ami").read_bytes()
    framer = AmiFramer()
    one_by_one = [b for i in range(len(data)) for b in framer.feed(data[i:i + 1])]
    assert one_by_one == list(iter_blocks(data))
    assert len(one_by_one) == 84  # 82 events + the Login and Logoff responses


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.stem)
def test_every_message_reads_as_callpop_replay_reads_it(capture: Path) -> None:
    """The daemon and `callpop replay` must see the same dicts, or their calls differ."""
    data = capture.read_bytes()
    ours = [parse_message(b.decode("utf-8", "replace")) for b in iter_blocks(data)]
    replay = [m for m, _ in iter_messages(data)]
    assert ours == replay
