"""What callpop instances say to each other on the ``callpop_push`` channel (callpop/fanout.py).

One JSON object per notification, ``o`` the instance that sent it and ``k`` its kind:
``p`` a pushed message (``m``, with its targets: extensions ``a``, employee ids ``e``,
supervisors watching all ``s``), ``d`` a logout (employee ``e``, reason ``r``, generation
``g``, session ``t``), ``w`` a presence announcement (callpop/presence.py: version ``v``,
part ``n`` of ``of``, extensions ``x``, PBX links ``p``). Anyone who may connect to the
database may NOTIFY on the channel, so what arrives is checked before it is believed.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["CHANNEL", "MAX_PAYLOAD", "decode", "encode"]

CHANNEL = "callpop_push"
MAX_PAYLOAD = 7999  # bytes: PostgreSQL refuses a NOTIFY payload of 8000 bytes or more
_CARD_MESSAGES = frozenset({"call.ringing", "call.answered", "call.transferred"})


def encode(envelope: dict[str, Any]) -> str:
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":"))


def decode(payload: str) -> dict[str, Any] | None:
    """The envelope if *payload* is one callpop sends, else None (anyone with access to the
    database may NOTIFY on the channel)."""
    try:
        env = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(env, dict) or not isinstance(env.get("o"), str):
        return None
    if env.get("k") == "w":
        ok = (isinstance(env.get("v"), int) and isinstance(env.get("n"), int) and isinstance(env.get("of"), int)
              and 0 <= env["n"] < env["of"] <= 1000
              and isinstance(env.get("x"), list) and all(isinstance(x, str) for x in env["x"])
              and isinstance(env.get("p", {}), dict)
              and all(isinstance(k, str) and isinstance(v, bool) for k, v in env.get("p", {}).items()))
        return env if ok else None
    if env.get("k") == "d":
        ok = (isinstance(env.get("e"), int) and isinstance(env.get("r"), str)
              and (env.get("g") is None or isinstance(env.get("g"), int))
              and (env.get("t") is None or isinstance(env.get("t"), str)))
        return env if ok else None
    message = env.get("m")
    ok = (env.get("k") == "p" and isinstance(message, dict) and isinstance(message.get("type"), str)
          and isinstance(message.get("id"), str) and isinstance(env.get("s"), bool)
          and isinstance(env.get("a"), list) and all(isinstance(a, str) for a in env["a"])
          and isinstance(env.get("e"), list) and all(isinstance(e, int) for e in env["e"])
          and (message.get("ref") is None or (isinstance(message["ref"], dict)
                                             and message["type"] in _CARD_MESSAGES)))
    return env if ok else None
