"""web: login credentials, failed logins, signing secrets

Revision ID: 0010_web
Revises: 0001_core
"""

import sqlalchemy as sa
from alembic import op

from ie_core.db import UTCDateTime

revision = "0010_web"
down_revision = "0001_core"
branch_labels = ("web",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "web_credentials",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_web_credentials"),
    )
    op.create_table(
        "web_login_failures",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_web_login_failures"),
    )
    op.create_index("ix_web_login_failures_key_at", "web_login_failures", ["key", "at"])
    op.create_table(
        "web_secrets",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("value", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_web_secrets"),
    )


def downgrade() -> None:
    op.drop_table("web_secrets")
    op.drop_index("ix_web_login_failures_key_at", table_name="web_login_failures")
    op.drop_table("web_login_failures")
    op.drop_table("web_credentials")
