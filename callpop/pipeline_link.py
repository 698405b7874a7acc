"""The pipeline's PBX links as the desks see them: lost, followed by another instance,
resynchronised (and the journal rows of calls that ended meanwhile closed)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from callpop.journal_writer import JournalWriter
from callpop.pipeline_state import ActiveCallSource, CallState
from callpop.push import Hub
from callpop.settings import Settings

__all__ = ["PbxLinks"]

log = logging.getLogger("callpop.pipeline")


class PbxLinks:
    """The PBX-link half of :class:`callpop.pipeline.Pipeline`: what the tabs are told when
    a link drops or comes back, and which calls are still followed."""

    _settings: Settings
    _hub: Hub
    _tracker: ActiveCallSource | None
    _calls: dict[str, CallState]
    _links_down: dict[str, bool]
    _resync_sweeps: set[asyncio.Task[int]]
    journal: JournalWriter
    peers_follow: Callable[[str], list[str]] | None

    def pbx_lost(self, pbx: str = "") -> None:
        """The AMI connection to *pbx* ("" the first PBX, else its ``[ami.NAME]``) dropped:
        every tab is told that what it shows of that PBX's calls in progress may be stale,
        until its resynchronisation puts it right. The other PBXs' calls are not concerned.

        Unless another callpop instance still follows that PBX: the tabs here keep getting
        its pops (callpop/fanout.py), so they are told only if it stops following it too."""
        followers = self._followers(pbx)
        self._links_down[pbx] = not followers
        if followers:
            log.warning("PBX %s: link lost here; instance %s still follows it, the desks here keep popping",
                        pbx or self._settings.pbx.id, ",".join(followers))
        else:
            self._hub.tell_all(self._pbx_status(pbx, connected=False))
        self._hub.presence_changed()

    def _followers(self, pbx: str) -> list[str]:
        return self.peers_follow(pbx or self._settings.pbx.id) if self.peers_follow is not None else []

    def peers_changed(self) -> None:
        """The other instances' PBX links changed: for each PBX whose link is down here,
        tell the tabs whether any instance still follows it."""
        for pbx, told in list(self._links_down.items()):
            followers = self._followers(pbx)
            if told and followers:
                log.info("PBX %s: instance %s follows it again; the desks here pop from it",
                         pbx or self._settings.pbx.id, ",".join(followers))
                self._hub.tell_all(self._pbx_status(pbx, connected=True))
            elif not told and not followers:
                log.warning("PBX %s: no instance follows it any more (its link is down here too)",
                            pbx or self._settings.pbx.id)
                self._hub.tell_all(self._pbx_status(pbx, connected=False))
            self._links_down[pbx] = not followers

    def resynced(self, pbx: str = "", asked_at: float | None = None) -> None:
        """A CoreShowChannels listing of *pbx* ("" the first PBX, else its ``[ami.NAME]``),
        asked for at *asked_at* (epoch s), was applied: tabs get a fresh snapshot, and that
        PBX's journal rows that no call in progress explains (the call ended while callpop
        or its PBX link was down) are closed, never left open.

        Only rows started before the listing was asked for: a call that started after it
        is followed from its own events, which may still be on their way here while
        another callpop instance on the same PBX has already opened its row."""
        self._links_down.pop(pbx, None)
        self._hub.presence_changed()
        self._hub.tell_all(self._pbx_status(pbx, connected=True))
        self._hub.resend_snapshots()
        task = asyncio.create_task(self.journal.sweep(self._followed(), scope=pbx, before=asked_at),
                                   name="journal-resync-sweep")
        self._resync_sweeps.add(task)
        task.add_done_callback(self._resync_sweeps.discard)

    def _pbx_status(self, pbx: str, *, connected: bool) -> dict[str, Any]:
        """``pbx.status`` (docs/websocket.md): the PBX's id and the prefix of its call ids
        ("" for the first PBX's plain Linkedids, ``NAME:`` for another's)."""
        return {"type": "pbx.status", "pbx": pbx or self._settings.pbx.id, "calls": f"{pbx}:" if pbx else "",
                "connected": connected}

    def _followed(self) -> set[str]:
        """Call keys still followed: the tracker's calls and those with events in flight here."""
        live = {call for call, state in self._calls.items() if not state.ended or state.worker is not None}
        if self._tracker is not None:
            with contextlib.suppress(Exception):
                live.update(a.call for a in self._tracker.active_calls())
        return live
