"""blocklist: blocked senders (incoming) and recipients (outgoing)

Revision ID: 0010_blocklist
Revises: 0001_core
"""

import sqlalchemy as sa
from alembic import op

from ie_core.db import UTCDateTime

revision = "0010_blocklist"
down_revision = "0001_core"
branch_labels = ("blocklist",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blocklist_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("value", sa.String(320), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_blocklist_entries"),
        sa.UniqueConstraint("kind", "account", "value", name="uq_blocklist_entries_kind"),
    )


def downgrade() -> None:
    op.drop_table("blocklist_entries")
