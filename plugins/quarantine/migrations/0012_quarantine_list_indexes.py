"""quarantine: indexes for the lists' order and filters (newest first by arrival, per
account) and for the used bytes per account (read from the index alone)

Revision ID: 0012_quarantine_list_indexes
Revises: 0010_quarantine_direction
"""

from alembic import op

revision = "0012_quarantine_list_indexes"
down_revision = "0010_quarantine_direction"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_quarantine_messages_received_at": ["received_at", "id"],
    "ix_quarantine_messages_account_received": ["account", "received_at"],
    "ix_quarantine_messages_account_state_size": ["account", "state", "size"],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "quarantine_messages", columns)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="quarantine_messages")
