"""notify: notification ledger, held-mail digest items, digest state

Revision ID: 0006_notify
Revises: 0001_core
"""

import sqlalchemy as sa
from alembic import op

from ie_core.db import UTCDateTime

revision = "0006_notify"
down_revision = "0001_core"
branch_labels = ("notify",)
depends_on = None


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "notify_notifications",
        sa.Column("id", big_id, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("account", sa.String(64)),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("message_id", sa.String(255), nullable=False),
        sa.Column("message", sa.LargeBinary(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("claimed_by", sa.String(128)),
        sa.Column("claimed_at", UTCDateTime()),
        sa.Column("sent_at", UTCDateTime()),
        sa.Column("last_reply", sa.String(512)),
        sa.PrimaryKeyConstraint("id", name="pk_notify_notifications"),
        sa.UniqueConstraint("key", name="uq_notify_notifications_key"),
    )
    op.create_index("ix_notify_notifications_state_next", "notify_notifications",
                    ["state", "next_attempt_at"])
    op.create_table(
        "notify_held",
        sa.Column("held_id", sa.String(64), nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("held_at", UTCDateTime(), nullable=False),
        sa.Column("sender", sa.String(1024), nullable=False),
        sa.Column("recipients", sa.JSON(), nullable=False),
        sa.Column("subject", sa.String(2048), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("owner_digest", sa.Integer()),
        sa.Column("admin_digest", sa.Integer()),
        sa.PrimaryKeyConstraint("held_id", name="pk_notify_held"),
    )
    op.create_index("ix_notify_held_account_state", "notify_held", ["account", "state"])
    op.create_table(
        "notify_digests",
        sa.Column("scope", sa.String(80), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("last_sent_at", UTCDateTime()),
        sa.PrimaryKeyConstraint("scope", name="pk_notify_digests"),
    )


def downgrade() -> None:
    op.drop_table("notify_digests")
    op.drop_index("ix_notify_held_account_state", table_name="notify_held")
    op.drop_table("notify_held")
    op.drop_index("ix_notify_notifications_state_next", table_name="notify_notifications")
    op.drop_table("notify_notifications")
