"""quarantine: a direction for each held message (incoming mail can be held too)

Revision ID: 0010_quarantine_direction
Revises: 0002_quarantine
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_quarantine_direction"
down_revision = "0002_quarantine"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("quarantine_messages") as batch:
        batch.add_column(sa.Column("direction", sa.String(16), nullable=False,
                                   server_default="outgoing"))
        batch.create_index("ix_quarantine_messages_direction_account",
                           ["direction", "account"])
    with op.batch_alter_table("quarantine_log") as batch:
        batch.add_column(sa.Column("direction", sa.String(16), nullable=False,
                                   server_default="outgoing"))


def downgrade() -> None:
    with op.batch_alter_table("quarantine_log") as batch:
        batch.drop_column("direction")
    with op.batch_alter_table("quarantine_messages") as batch:
        batch.drop_index("ix_quarantine_messages_direction_account")
        batch.drop_column("direction")
