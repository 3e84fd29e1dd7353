"""ratelimit: per-object counters of the sliding window (no sum of the hour's rows per
message)

Revision ID: 0009_ratelimit_counters
Revises: 0003_ratelimit
"""

import sqlalchemy as sa
from alembic import op

from ie_core.db import UTCDateTime

revision = "0009_ratelimit_counters"
down_revision = "0003_ratelimit"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ratelimit_objects") as batch:
        batch.add_column(sa.Column("window_messages", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("window_recipients", sa.Integer(), nullable=False,
                                   server_default="0"))
        # NULL: the first check after the upgrade sums the object's rows once
        batch.add_column(sa.Column("window_at", UTCDateTime()))


def downgrade() -> None:
    with op.batch_alter_table("ratelimit_objects") as batch:
        batch.drop_column("window_at")
        batch.drop_column("window_recipients")
        batch.drop_column("window_messages")
