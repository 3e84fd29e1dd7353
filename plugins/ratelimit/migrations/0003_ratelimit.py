"""ratelimit: sender objects, counted sends, mail held for the send limit

Revision ID: 0003_ratelimit
Revises: 0001_core
"""

import sqlalchemy as sa
from alembic import op

from ie_core.db import UTCDateTime

revision = "0003_ratelimit"
down_revision = "0001_core"
branch_labels = ("ratelimit",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ratelimit_objects",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("so_type", sa.String(16), nullable=False),
        sa.Column("name", sa.String(1024), nullable=False),
        sa.Column("parent_id", sa.String(36)),
        sa.Column("limit_override", sa.Integer()),
        sa.Column("limited_at", UTCDateTime()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ratelimit_objects"),
        sa.UniqueConstraint("so_type", "name", name="uq_ratelimit_objects_so_type"),
    )
    op.create_table(
        "ratelimit_sends",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("object_id", sa.String(36), nullable=False),
        sa.Column("message_id", sa.String(36), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("recipients", sa.Integer(), nullable=False),
        sa.Column("counted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ratelimit_sends"),
        sa.ForeignKeyConstraint(["object_id"], ["ratelimit_objects.id"], ondelete="CASCADE",
                                name="fk_ratelimit_sends_object_id_ratelimit_objects"),
    )
    op.create_index("ix_ratelimit_sends_object_at", "ratelimit_sends", ["object_id", "at"])
    op.create_index("ix_ratelimit_sends_at", "ratelimit_sends", ["at"])
    op.create_index("ix_ratelimit_sends_message_id", "ratelimit_sends", ["message_id"])
    op.create_table(
        "ratelimit_held",
        sa.Column("held_id", sa.String(36), nullable=False),
        sa.Column("message_id", sa.String(36), nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("object_ids", sa.JSON(), nullable=False),
        sa.Column("recipients", sa.Integer(), nullable=False),
        sa.Column("held_at", UTCDateTime(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("claimed_at", UTCDateTime()),
        sa.Column("next_try_at", UTCDateTime()),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("held_id", name="pk_ratelimit_held"),
    )
    op.create_index("ix_ratelimit_held_state_held_at", "ratelimit_held",
                    ["state", "held_at"])


def downgrade() -> None:
    op.drop_index("ix_ratelimit_held_state_held_at", table_name="ratelimit_held")
    op.drop_table("ratelimit_held")
    op.drop_index("ix_ratelimit_sends_message_id", table_name="ratelimit_sends")
    op.drop_index("ix_ratelimit_sends_at", table_name="ratelimit_sends")
    op.drop_index("ix_ratelimit_sends_object_at", table_name="ratelimit_sends")
    op.drop_table("ratelimit_sends")
    op.drop_table("ratelimit_objects")
