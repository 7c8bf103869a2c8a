"""Decisions, feedback and used JWT ids.

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "decisions",
        sa.Column("record_id", sa.String(36), primary_key=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("service", sa.String(100), nullable=False),
        sa.Column("hook", sa.String(100), nullable=False),
        sa.Column("hook_instance", sa.String(100), nullable=False),
        sa.Column("card_uuid", sa.String(36), nullable=False),
        sa.Column("tier", sa.String(40), nullable=False),
        sa.Column("question", sa.String(40), nullable=False),
        sa.Column("primary_rule", sa.String(40), nullable=False),
        sa.Column("rules", sa.JSON, nullable=False),
        sa.Column("cautions", sa.JSON, nullable=False),
        sa.Column("missing_data", sa.JSON, nullable=False),
        sa.Column("kb_version", sa.String(40), nullable=False),
        sa.Column("kb_hash", sa.String(100), nullable=False),
        sa.Column("patient_key", sa.String(64), nullable=False),
        sa.Column("order_ref", sa.String(200), nullable=True),
    )
    op.create_index("ix_decisions_recorded_at", "decisions", ["recorded_at"])
    op.create_index("ix_decisions_card_uuid", "decisions", ["card_uuid"])
    op.create_table(
        "feedback",
        sa.Column("record_id", sa.String(36), primary_key=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("service", sa.String(100), nullable=False),
        sa.Column("card_uuid", sa.String(100), nullable=False),
        sa.Column("known_card", sa.Boolean, nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("outcome_timestamp", sa.String(100), nullable=False),
        sa.Column("override_system", sa.String(2000), nullable=True),
        sa.Column("override_code", sa.String(200), nullable=True),
        sa.Column("accepted_suggestions", sa.JSON, nullable=False),
    )
    op.create_index("ix_feedback_recorded_at", "feedback", ["recorded_at"])
    op.create_index("ix_feedback_card_uuid", "feedback", ["card_uuid"])
    op.create_table(
        "jti_seen",
        sa.Column("issuer", sa.String(300), primary_key=True),
        sa.Column("jti", sa.String(300), primary_key=True),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_jti_seen_expires_at", "jti_seen", ["expires_at"])


def downgrade() -> None:
    op.drop_table("jti_seen")
    op.drop_table("feedback")
    op.drop_table("decisions")
