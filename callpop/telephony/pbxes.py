"""Several PBXs, one pipeline: call ids and agents namespaced by the PBX they come from.

Each ``[ami.NAME]`` PBX has its own AMI connection and its own tracker (channels and
Linkedids are a PBX's own: two Asterisks hand out the same ``1733212345.17``). What leaves
a tracker of another PBX than the first is renamed ``NAME:<call id>``, and its agents
found by the default rule are ``NAME:101`` (telephony.tracker.TrackerConfig), so the
pipeline, the desk and the journal see calls and extensions that never collide; the
first PBX (``[ami]``, ``[pbx] id``) keeps plain ids, so a single-PBX set-up is unchanged.
A call transferred from one PBX to another is two calls here, one on each.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import TypeVar

from callpop.telephony.events import ActiveCall, Arrival, CallEvent
from callpop.telephony.tracker import CallTracker

__all__ = ["Trackers", "namespaced_prefetch", "namespaced_sink", "pbx_of", "qualify"]

E = TypeVar("E", CallEvent, Arrival, ActiveCall)


def qualify(pbx: str, call: str) -> str:
    return f"{pbx}:{call}"


def pbx_of(call: str, first: str, others: Collection[str]) -> str:
    """The id of the PBX a call id belongs to: NAME for ``NAME:<Linkedid>`` of an
    ``[ami.NAME]`` PBX, else *first* (the first PBX's ids are plain Linkedids)."""
    name, sep, _ = call.partition(":")
    return name if sep and name in others else first


def _renamed(pbx: str, item: E) -> E:
    return dataclasses.replace(item, call=qualify(pbx, item.call))


def namespaced_sink(pbx: str, sink: Callable[[Sequence[CallEvent]], Awaitable[None]]
                    ) -> Callable[[Sequence[CallEvent]], Awaitable[None]]:
    """The pipeline's sink for the tracker of *pbx*: the same events, call ids renamed."""

    async def handle(events: Sequence[CallEvent]) -> None:
        await sink([_renamed(pbx, e) for e in events])

    return handle


def namespaced_prefetch(pbx: str, prefetch: Callable[[Sequence[Arrival]], None]
                        ) -> Callable[[Sequence[Arrival]], None]:
    def hint(arrivals: Sequence[Arrival]) -> None:
        prefetch([_renamed(pbx, a) for a in arrivals])

    return hint


@dataclasses.dataclass(frozen=True)
class Trackers:
    """The calls on now across every PBX's tracker, ids as the pipeline knows them."""

    first: CallTracker
    others: Mapping[str, CallTracker]

    def active_calls(self) -> list[ActiveCall]:
        calls = self.first.active_calls()
        for pbx, tracker in self.others.items():
            calls.extend(_renamed(pbx, a) for a in tracker.active_calls())
        return calls
