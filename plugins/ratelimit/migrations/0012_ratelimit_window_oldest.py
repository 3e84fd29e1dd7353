"""ratelimit: the oldest counted send each object's window may still hold (no query for
sends leaving the window while none can have)

Revision ID: 0012_ratelimit_window_oldest
Revises: 0009_ratelimit_counters
"""

import sqlalchemy as sa
from alembic import op

from ie_core.db import UTCDateTime

revision = "0012_ratelimit_window_oldest"
down_revision = "0009_ratelimit_counters"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ratelimit_objects") as batch:
        # NULL: not known; the next check that moves the window looks it up
        batch.add_column(sa.Column("window_oldest", UTCDateTime()))


def downgrade() -> None:
    with op.batch_alter_table("ratelimit_objects") as batch:
        batch.drop_column("window_oldest")
