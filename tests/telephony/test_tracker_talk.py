"""Talk time: a call's talk is the caller's connected time, never the sum of the agents'
shares; each agent's share is their own; the answer is never before the start. Checked on
every recorded capture and every hand-made stream, and on a transfer whose shares overlap."""

from __future__ import annotations

from pathlib import Path

import pytest

from callpop.telephony.events import AgentTalk, Ended
from tests.support.captures import AMI, STREAMS, config_for, messages, run

STREAM_FILES = sorted(STREAMS.glob("*.jsonl"))
CAPTURE_FILES = sorted(AMI.glob("*.jsonl")) + sorted((AMI / "pjsip").glob("*.jsonl"))
# streams in which no call happens (a click-to-dial the agent declined: the client was never dialled)
NO_CALL = {"sip13-click-to-dial-agent-declines"}


def ended_of(path: Path) -> list[Ended]:
    return [e for e in run(messages(path), config=config_for(path.stem)) if isinstance(e, Ended)]


@pytest.mark.parametrize("path", CAPTURE_FILES + STREAM_FILES, ids=lambda p: p.stem)
def test_answer_after_start_and_talk_within_the_call(path: Path) -> None:
    ended = ended_of(path)
    assert bool(ended) != (path.stem in NO_CALL)
    for e in ended:
        assert e.started_at is not None and e.ended_at is not None
        assert e.talk_seconds <= e.ended_at - e.started_at
        assert all(t.talk_seconds <= e.talk_seconds for t in e.talks)
        if e.outcome == "answered":
            assert e.answered_at is not None
            assert e.started_at <= e.answered_at <= e.ended_at
            assert e.talk_seconds <= e.ended_at - e.answered_at
        else:
            assert e.answered_at is None and e.talk_seconds == 0


def _consultation_in_the_client_call() -> list[tuple[dict[str, object], float | None]]:
    """The attended transfer stream with the consultation inside the client's call (the
    Linkedid the atxfer feature gives the channels it creates): 101 talks 2-14 s, 102
    answers the consultation at 10 s and talks until 20 s, the client is connected 2-20 s."""
    msgs = []
    for message, clock in messages(STREAMS / "sip-attended-transfer.jsonl"):
        msgs.append(({k: "1795820100.300" if k.endswith("Linkedid") and v == "1795820108.302" else v
                      for k, v in message.items()}, clock))
    return msgs


def test_overlapping_shares_count_once_in_the_call() -> None:
    events = run(_consultation_in_the_client_call())
    client_call = next(e for e in events if isinstance(e, Ended) and e.direction == "inbound")
    assert client_call.talks == (AgentTalk("101", 12), AgentTalk("102", 10))
    assert client_call.talk_seconds == 18  # 2 s to 20 s, not 12 + 10
    assert client_call.answered_at is not None and client_call.started_at is not None
    assert 1.9 < client_call.answered_at - client_call.started_at < 2.1
