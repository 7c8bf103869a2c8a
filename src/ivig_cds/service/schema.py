"""The decision store's tables (SQLAlchemy Core); Alembic migrations create and evolve them.

No column holds a patient identifier: `patient_key` is a keyed hash (see `ivig_cds._pseudonym`), and
the key is never stored here.
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = ["decisions", "feedback", "jti_seen", "metadata"]

metadata = sa.MetaData()

decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("record_id", sa.String(36), primary_key=True),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("service", sa.String(100), nullable=False),
    sa.Column("hook", sa.String(100), nullable=False),
    sa.Column("hook_instance", sa.String(100), nullable=False),
    sa.Column("card_uuid", sa.String(36), nullable=False, index=True),
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

feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("record_id", sa.String(36), primary_key=True),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("service", sa.String(100), nullable=False),
    sa.Column("card_uuid", sa.String(100), nullable=False, index=True),
    sa.Column("known_card", sa.Boolean, nullable=False),
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("outcome_timestamp", sa.String(100), nullable=False),
    sa.Column("override_system", sa.String(2000), nullable=True),
    sa.Column("override_code", sa.String(200), nullable=True),
    sa.Column("accepted_suggestions", sa.JSON, nullable=False),
)

jti_seen = sa.Table(
    "jti_seen",
    metadata,
    sa.Column("issuer", sa.String(300), primary_key=True),
    sa.Column("jti", sa.String(300), primary_key=True),
    sa.Column("expires_at", sa.Float, nullable=False, index=True),
)
