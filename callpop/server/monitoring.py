"""``/health`` for load balancers and systemd watchdogs, ``/metrics`` for Prometheus.

``/health`` answers 200 when callpop can do its job (logged in to the PBX's AMI, the
database answering) and 503 with the reasons when it cannot, so a load balancer sends
browsers to another instance; counts only, never names. ``/metrics`` is the Prometheus
text format (callpop/metrics.py), for the addresses in ``[metrics] allow``.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from callpop.fanout import FANOUT
from callpop.metrics import METRICS, readiness
from callpop.pipeline import PIPELINE
from callpop.server.errors import Refusal
from callpop.server.keys import AMI, HUB, SETTINGS, connections
from callpop.server.peers import peer_allowed

__all__ = ["health", "metrics"]

STARTED = time.time()


async def health(request: web.Request) -> web.StreamResponse:
    """Ready or not, and why; AMI state, connected tabs and calls in flight."""
    ami = request.app.get(AMI)
    pipeline = request.app.get(PIPELINE)
    reasons = await readiness(request.app)
    body: dict[str, Any] = {
        "status": "ok" if not reasons else "not ready",
        "ready": not reasons,
        "reasons": reasons,
        "uptime_seconds": round(time.time() - STARTED, 1),
        "ami": str(getattr(ami, "state", "off")) if ami is not None else "off",
        "pbxes": {pbx: conn.state for pbx, conn in connections(request.app).items()},
        "database": "ok" if not any(r.startswith("database") for r in reasons) else "down",
        "push": request.app[HUB].stats(),
        "fanout": fanout.stats() if (fanout := request.app.get(FANOUT)) is not None else "off",
        "calls_in_flight": getattr(pipeline, "active", 0),
    }
    return web.json_response(body, status=200 if not reasons else 503, headers={"Cache-Control": "no-store"})


async def metrics(request: web.Request) -> web.StreamResponse:
    if not peer_allowed(request, request.app[SETTINGS].metrics.allow):
        raise Refusal(403, "metrics: this address is not in [metrics] allow")
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})
