"""quarantine: held messages, per-account quarantine settings, release/delete history

Revision ID: 0002_quarantine
Revises: 0001_core
"""

import sqlalchemy as sa
from alembic import op

from ie_core.db import UTCDateTime

revision = "0002_quarantine"
down_revision = "0001_core"
branch_labels = ("quarantine",)
depends_on = None


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "quarantine_messages",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("quarantined_at", UTCDateTime(), nullable=False),
        sa.Column("mail_from", sa.String(320), nullable=False),
        sa.Column("rcpt_tos", sa.JSON(), nullable=False),
        sa.Column("header_from", sa.String(998), nullable=False),
        sa.Column("subject", sa.String(998), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("reasons_key", sa.String(255), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("script_raw", sa.String(1024)),
        sa.Column("script_domain", sa.String(255)),
        sa.Column("script_path", sa.String(1024)),
        sa.Column("claimed_at", UTCDateTime()),
        sa.Column("claim_limited", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_quarantine_messages"),
    )
    op.create_index("ix_quarantine_messages_account_quarantined", "quarantine_messages",
                    ["account", "quarantined_at"])
    op.create_index("ix_quarantine_messages_quarantined_at", "quarantine_messages",
                    ["quarantined_at"])
    op.create_table(
        "quarantine_accounts",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("limit_bytes", sa.BigInteger()),
        sa.Column("releases_limit", sa.Integer()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_quarantine_accounts"),
    )
    op.create_table(
        "quarantine_log",
        sa.Column("id", big_id, autoincrement=True, nullable=False),
        sa.Column("message_id", sa.String(36), nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("limited", sa.Boolean(), nullable=False),
        sa.Column("mail_from", sa.String(320), nullable=False),
        sa.Column("rcpt_tos", sa.JSON(), nullable=False),
        sa.Column("subject", sa.String(998), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("quarantined_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_quarantine_log"),
    )
    op.create_index("ix_quarantine_log_account_action_at", "quarantine_log",
                    ["account", "action", "at"])


def downgrade() -> None:
    op.drop_index("ix_quarantine_log_account_action_at", table_name="quarantine_log")
    op.drop_table("quarantine_log")
    op.drop_table("quarantine_accounts")
    op.drop_index("ix_quarantine_messages_quarantined_at", table_name="quarantine_messages")
    op.drop_index("ix_quarantine_messages_account_quarantined",
                  table_name="quarantine_messages")
    op.drop_table("quarantine_messages")
