"""Calls of a further ``[ami.NAME]`` PBX carry that PBX's id.

Until now every row was written with the first PBX's ``pbx_id``, the further PBXs' calls
told apart only by their keys (``NAME:<Linkedid>``, callpop/telephony/pbxes.py). A key of
that form gets its PBX's name as ``pbx_id``; a first PBX's keys are plain Linkedids (no
colon), so they are left alone.

Revision ID: 0008_calls_pbx_id_from_key
Revises: 0007_audit_log_sessions
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008_calls_pbx_id_from_key"
down_revision: str | None = "0007_audit_log_sessions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        name = "split_part(call_key, ':', 1)"
    else:
        name = "substr(call_key, 1, instr(call_key, ':') - 1)"
    op.execute(f"UPDATE calls SET pbx_id = {name} WHERE call_key LIKE '%:%' AND {name} <> ''")


def downgrade() -> None:
    """Nothing to undo: the first PBX's id is not known here, and the keys still say which PBX."""
