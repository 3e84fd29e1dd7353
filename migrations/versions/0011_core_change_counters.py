"""core: change counters of read-mostly data, for caches exact across processes and nodes

Revision ID: 0011_core_change_counters
Revises: 0008_message_log_digest
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_core_change_counters"
down_revision = "0008_message_log_digest"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "change_counters",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_change_counters"))


def downgrade() -> None:
    op.drop_table("change_counters")
