"""bayes: token counts, learned messages and totals of the built-in classifier

Revision ID: 0004_bayes
Revises: 0001_core
"""

import sqlalchemy as sa
from alembic import op

from ie_core.db import UTCDateTime

revision = "0004_bayes"
down_revision = "0001_core"
branch_labels = ("bayes",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bayes_tokens",
        sa.Column("token", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=False, nullable=False),
        sa.Column("ham_count", sa.Integer(), nullable=False),
        sa.Column("spam_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("token", name="pk_bayes_tokens"),
    )
    op.create_table(
        "bayes_messages",
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("spam", sa.Boolean(), nullable=False),
        sa.Column("tokens", sa.LargeBinary(), nullable=False),
        sa.Column("learned_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("digest", name="pk_bayes_messages"),
    )
    op.create_table(
        "bayes_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("nham", sa.Integer(), nullable=False),
        sa.Column("nspam", sa.Integer(), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_bayes_state"),
    )


def downgrade() -> None:
    op.drop_table("bayes_state")
    op.drop_table("bayes_messages")
    op.drop_table("bayes_tokens")
