"""Call rows whose talk callpop could not see, put right from the PBX's CDR rows.

A row is *uncertain* when callpop did not see its answer (``answer_unseen``: learned from a
listing after a restart; its talk is a lower bound, a contact may be kept as
``uncertain_talk``) or its end (``end_unseen``: closed by a listing or a sweep; outcome
``unknown`` when no answer was seen either). The PBX's CDR rows of the call (by Linkedid,
callpop/store/cdr.py) say what happened: :func:`cdr_call` makes the caller's connected time
and each agent's share out of them, :func:`corrected` the ``Ended`` the journal writes
like any other end (store/journal.close_call: the row replaced once, its contacts judged
again, ``times_source = 'cdr'``).

Clocks: only durations are taken from the CDR (``duration``, ``billsec`` and differences
between the ``calldate`` of one call's rows). They are placed on callpop's clock at a
moment callpop saw itself: the end when it saw it, else the answer it recorded live, else
the row's start (its first ringing; the CDR's first row starts at the caller's channel,
earlier by whatever ran before a phone rang: answer and end are then late by that much,
the talk is exact).

Never a guess: a call without CDR rows, whose rows show no segment between the client and
an agent, whose answered segment was answered at its own start (the PBX answered the
caller itself, a queue or an IVR: the agent's answer is not in the row), or whose rows
contradict what callpop saw (an answer it saw but the CDR has none, a talk shorter than
the part callpop saw, an answer before the first ringing or after the listing that found
it talking) stays uncertain, as without a CDR store.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

from sqlalchemy import bindparam, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from callpop.store.cdr import CdrRow
from callpop.store.journal_recovery import in_scope
from callpop.store.models import Call, CallParticipant
from callpop.telephony.events import AgentTalk, Direction, Ended

__all__ = ["CdrCall", "Uncertain", "cdr_call", "corrected", "uncertain_rows"]

SLACK = 1.5  # s: CDR times are whole seconds; callpop's bounds are compared with this much give

AgentOf = Callable[[str], str | None]


@dataclass(frozen=True, slots=True)
class CdrCall:
    """A call as its CDR rows tell it, in seconds from the start of its first row."""

    answered: bool
    talk_seconds: int  # the caller's connected time: the union of its answered segments
    answer_after: float | None  # the first answer
    end_after: float  # the last row's end
    talks: tuple[AgentTalk, ...]  # each agent's share
    answered_by: tuple[str, ...]
    rang: tuple[str, ...]


def cdr_call(rows: Sequence[CdrRow], agent_of: AgentOf) -> CdrCall | str:
    """The call's times from its CDR rows, or why they cannot be used (a short reason).

    A segment counts when exactly one side is an agent (*agent_of* on the channel name)
    and the other is not: the client with an agent. Segments between two agents (a
    consultation) or with no agent (an IVR, a queue before a member answered) are not the
    caller's talk with anyone."""
    if not rows:
        return "no CDR rows"
    origin = min(r.start for r in rows)

    def at(moment: dt.datetime) -> float:
        return (moment - origin).total_seconds()

    end_after = max(at(r.end) for r in rows)
    spans: list[tuple[float, float]] = []
    shares: dict[str, int] = {}
    rang: list[str] = []
    answered_by: list[tuple[float, str]] = []
    for row in rows:
        a, b = agent_of(row.channel) if row.channel else None, agent_of(row.dstchannel) if row.dstchannel else None
        if (a is None) == (b is None) or not (row.channel and row.dstchannel):
            continue  # not the client with an agent
        agent = cast(str, a or b)
        rang.append(agent)
        answer = row.answer
        if answer is None:
            continue
        if row.billsec >= row.duration and row.duration > 0:
            return f"segment {row.channel} -> {row.dstchannel} was answered at its own start (the PBX's answer?)"
        spans.append((at(answer), at(row.end)))
        shares[agent] = shares.get(agent, 0) + row.billsec
        answered_by.append((at(answer), agent))
    if not rang:
        return "no segment between the client and an agent"
    talk = 0.0
    reach = float("-inf")
    for start, end in sorted(spans):  # the union: never two agents' overlapping shares added up
        if end > reach:
            talk += end - max(start, reach)
            reach = end
    order = tuple(dict.fromkeys(agent for _, agent in sorted(answered_by)))
    return CdrCall(answered=bool(spans), talk_seconds=round(talk),
                   answer_after=min(s for s, _ in spans) if spans else None, end_after=end_after,
                   talks=tuple(AgentTalk(agent, shares[agent]) for agent in order), answered_by=order,
                   rang=tuple(dict.fromkeys(rang)))


@dataclass(frozen=True, slots=True)
class Uncertain:
    """A journal row whose talk callpop could not see, with what it did see."""

    call_id: int
    call_key: str
    direction: str
    client_number: str | None
    caller_name: str | None
    client_id: int | None
    started_at: dt.datetime
    answered_at: dt.datetime | None
    ended_at: dt.datetime
    talk_seconds: int
    end_unseen: bool
    answer_unseen: bool
    rang: tuple[str, ...]
    answered: tuple[str, ...]  # participants recorded as answering


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


_UNCERTAIN = (select(Call.id, Call.call_key, Call.direction, Call.client_number, Call.caller_name, Call.client_id,
                     Call.started_at, Call.answered_at, Call.ended_at, Call.talk_seconds, Call.end_unseen,
                     Call.answer_unseen)
              .where(Call.pbx_id == bindparam("pbx_id"), Call.ended_at.is_not(None),
                     or_(Call.end_unseen, Call.answer_unseen),
                     Call.ended_at <= bindparam("settled"), Call.ended_at >= bindparam("since"))
              .order_by(Call.ended_at, Call.id).limit(bindparam("limit")))
_PARTS = (select(CallParticipant.call_id, CallParticipant.extension, CallParticipant.answered)
          .where(CallParticipant.call_id.in_(bindparam("ids", expanding=True))).order_by(CallParticipant.id))


async def uncertain_rows(session: AsyncSession, pbx_id: str, *, settled: dt.datetime, since: dt.datetime,
                         limit: int = 500, scope: str | None = "") -> list[Uncertain]:
    """Uncertain rows of *pbx_id* that ended between *since* and *settled* (their CDR rows
    should be written by then), oldest first; *scope*: journal_recovery.in_scope."""
    rows = [r for r in (await session.execute(_UNCERTAIN, {"pbx_id": pbx_id, "settled": settled, "since": since,
                                                           "limit": limit})).all() if in_scope(r[1], scope)]
    parts: dict[int, list[tuple[str, bool]]] = {}
    if rows:
        for call_id, ext, answered in (await session.execute(_PARTS, {"ids": [r[0] for r in rows]})).all():
            parts.setdefault(int(call_id), []).append((ext, bool(answered)))
    return [Uncertain(int(r[0]), r[1], r[2], r[3], r[4], r[5], _aware(r[6]),
                      _aware(r[7]) if r[7] is not None else None, _aware(cast(dt.datetime, r[8])), int(r[9] or 0),
                      bool(r[10]),
                      bool(r[11]), tuple(e for e, _ in parts.get(int(r[0]), [])),
                      tuple(e for e, a in parts.get(int(r[0]), []) if a))
            for r in rows]


def corrected(row: Uncertain, cdr: CdrCall) -> Ended | str:
    """The ``Ended`` that puts *row* right from *cdr*, or why the CDR cannot be trusted
    against what callpop saw (see the module docstring)."""
    seen_answer = row.answered_at if row.answered_at is not None and not row.answer_unseen else None
    if not cdr.answered:
        if seen_answer is not None or row.answered:
            return "callpop saw an answer, the CDR rows have none"
        answered_at = None
        # nobody answered: the end on callpop's clock from the start (or the end it saw)
        ended_at = row.ended_at if not row.end_unseen else row.started_at + dt.timedelta(seconds=cdr.end_after)
    else:
        assert cdr.answer_after is not None
        tail = dt.timedelta(seconds=cdr.end_after - cdr.answer_after)
        if not row.end_unseen:
            ended_at = row.ended_at
            answered_at = ended_at - tail
        elif seen_answer is not None:
            answered_at = seen_answer
            ended_at = answered_at + tail
        else:
            answered_at = row.started_at + dt.timedelta(seconds=cdr.answer_after)
            ended_at = answered_at + tail
        slack = dt.timedelta(seconds=SLACK)
        if answered_at < row.started_at - slack:
            return "the CDR's answer comes before any phone rang (the PBX's own answer?)"
        if row.answer_unseen and row.answered_at is not None and answered_at > row.answered_at + slack:
            return "the CDR's answer comes after the listing that showed the call talking"
        if cdr.talk_seconds + SLACK < row.talk_seconds:
            return f"the CDR's talk ({cdr.talk_seconds} s) is shorter than what callpop saw ({row.talk_seconds} s)"
        missing = set(row.answered) - set(cdr.answered_by)
        if missing:
            return f"callpop saw {', '.join(sorted(missing))} answer, the CDR rows do not"
    ended_at = max(ended_at, row.started_at)
    return Ended(row.call_key, cast(Direction, row.direction), row.client_number,
                 "answered" if cdr.answered else "missed", cdr.answered_by, cdr.talk_seconds,
                 caller_name=row.caller_name, started_at=row.started_at.timestamp(),
                 ended_at=ended_at.timestamp(), agents_rang=tuple(dict.fromkeys([*row.rang, *cdr.rang])),
                 talks=cdr.talks, answered_at=answered_at.timestamp() if answered_at is not None else None,
                 times_source="cdr")
