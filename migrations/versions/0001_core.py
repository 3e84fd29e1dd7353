"""core: message log, accounts, domain map, settings, events outbox

Revision ID: 0001_core
Revises:
"""

import sqlalchemy as sa
from alembic import op

from ie_core.db.base import UTCDateTime

revision = "0001_core"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "message_log",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("queue_id", sa.String(64)),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("mail_from", sa.String(320), nullable=False),
        sa.Column("rcpt_tos", sa.JSON(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("domain", sa.String(255)),
        sa.Column("sender_email", sa.String(320)),
        sa.Column("script", sa.String(1024)),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(64), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_message_log"),
    )
    op.create_index("ix_message_log_account_received", "message_log", ["account", "received_at"])
    op.create_index("ix_message_log_received_at", "message_log", ["received_at"])
    op.create_table(
        "accounts",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("owner_email", sa.String(320)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_accounts"),
    )
    op.create_table(
        "domain_map",
        sa.Column("domain", sa.String(255), nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("domain", name="pk_domain_map"),
        sa.ForeignKeyConstraint(["account"], ["accounts.name"], ondelete="CASCADE",
                                name="fk_domain_map_account_accounts"),
    )
    op.create_table(
        "settings",
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("value", sa.JSON()),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_settings"),
    )
    op.create_table(
        "events",
        sa.Column("id", big_id, autoincrement=True, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("account", sa.String(64)),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
    )
    op.create_table(
        "event_cursors",
        sa.Column("consumer", sa.String(64), nullable=False),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("consumer", name="pk_event_cursors"),
    )


def downgrade() -> None:
    op.drop_table("event_cursors")
    op.drop_table("events")
    op.drop_table("settings")
    op.drop_table("domain_map")
    op.drop_table("accounts")
    op.drop_index("ix_message_log_received_at", table_name="message_log")
    op.drop_index("ix_message_log_account_received", table_name="message_log")
    op.drop_table("message_log")
