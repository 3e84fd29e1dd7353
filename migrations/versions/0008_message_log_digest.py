"""core: message log rows carry the body digest; queue ids are indexed (duplicate
suppression when the MTA retries a message ie already delivered or held)

Revision ID: 0008_message_log_digest
Revises: 0001_core
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_message_log_digest"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("message_log") as batch:
        batch.add_column(sa.Column("digest", sa.String(64), nullable=True))
    op.create_index("ix_message_log_queue_id", "message_log", ["queue_id"])


def downgrade() -> None:
    op.drop_index("ix_message_log_queue_id", table_name="message_log")
    with op.batch_alter_table("message_log") as batch:
        batch.drop_column("digest")
