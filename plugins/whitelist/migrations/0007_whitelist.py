"""whitelist: authuser, sender and recipient lists

Revision ID: 0007_whitelist
Revises: 0001_core
"""

import sqlalchemy as sa
from alembic import op

from ie_core.db import UTCDateTime

revision = "0007_whitelist"
down_revision = "0001_core"
branch_labels = ("whitelist",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "whitelist_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("value", sa.String(320), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_whitelist_entries"),
        sa.UniqueConstraint("kind", "value", name="uq_whitelist_entries_kind"),
    )


def downgrade() -> None:
    op.drop_table("whitelist_entries")
