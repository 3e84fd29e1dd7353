"""incoming: per-account opt-out and daily statistics

Revision ID: 0005_incoming
Revises: 0001_core
"""

import sqlalchemy as sa
from alembic import op

from ie_core.db import UTCDateTime

revision = "0005_incoming"
down_revision = "0001_core"
branch_labels = ("incoming",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "incoming_accounts",
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("account", name="pk_incoming_accounts"),
    )
    op.create_table(
        "incoming_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("spam", sa.Integer(), nullable=False),
        sa.Column("legitimate", sa.Integer(), nullable=False),
        sa.Column("unfiltered", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "account", name="pk_incoming_daily"),
    )


def downgrade() -> None:
    op.drop_table("incoming_daily")
    op.drop_table("incoming_accounts")
