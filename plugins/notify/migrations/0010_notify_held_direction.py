"""notify: the direction and score of each held message the notifier was told about (the
owner digest lists incoming holds apart, with their score)

Revision ID: 0010_notify_held_direction
Revises: 0006_notify
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_notify_held_direction"
down_revision = "0006_notify"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notify_held") as batch:
        batch.add_column(sa.Column("direction", sa.String(16), nullable=False,
                                   server_default="outgoing"))
        batch.add_column(sa.Column("score", sa.Float(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("notify_held") as batch:
        batch.drop_column("score")
        batch.drop_column("direction")
