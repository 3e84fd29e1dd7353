"""incoming: greylisting triplets

Revision ID: 0005_incoming_greylist
Revises: 0005_incoming
"""

import sqlalchemy as sa
from alembic import op

from ie_core.db import UTCDateTime

revision = "0005_incoming_greylist"
down_revision = "0005_incoming"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "incoming_greylist",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("network", sa.String(64), nullable=False),
        sa.Column("sender", sa.String(320), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("first_seen", UTCDateTime(), nullable=False),
        sa.Column("last_seen", UTCDateTime(), nullable=False),
        sa.Column("passed_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("key", name="pk_incoming_greylist"),
    )
    op.create_index("ix_incoming_greylist_last_seen", "incoming_greylist", ["last_seen"])


def downgrade() -> None:
    op.drop_index("ix_incoming_greylist_last_seen", table_name="incoming_greylist")
    op.drop_table("incoming_greylist")
