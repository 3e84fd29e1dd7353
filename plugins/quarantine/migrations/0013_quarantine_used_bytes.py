"""quarantine: each account's used bytes kept in its row by triggers

``quarantine_accounts.used_bytes`` is the size of the account's messages that count
against its limit (held or being released).  Triggers on ``quarantine_messages`` keep it
exact on every insert, delete and change of state, size or account, whatever statement
makes it, so a hold reads one number instead of summing the account's messages (which
grows with them: 20,000 held messages took 1.6 ms on SQLite and 5.6 ms on PostgreSQL per
hold, inside the account's lock).  The upgrade counts what is held now.

Lock order: a statement that changes the number locks the account's row after the
message's, so every transaction that does it takes the account's row first (``hold``,
``delete``, the end of a release), as the quarantine's other account locks do.  A claim
(held -> releasing) and its undoing count the same before and after and leave the row
alone.

Revision ID: 0013_quarantine_used_bytes
Revises: 0012_quarantine_list_indexes
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_quarantine_used_bytes"
down_revision = "0012_quarantine_list_indexes"
branch_labels = None
depends_on = None

COUNTED = "('held', 'releasing')"

SQLITE = [
    f"""CREATE TRIGGER quarantine_used_insert AFTER INSERT ON quarantine_messages
    WHEN NEW.state IN {COUNTED} BEGIN
      UPDATE quarantine_accounts SET used_bytes = used_bytes + NEW.size
      WHERE name = NEW.account;
    END""",
    f"""CREATE TRIGGER quarantine_used_delete AFTER DELETE ON quarantine_messages
    WHEN OLD.state IN {COUNTED} BEGIN
      UPDATE quarantine_accounts SET used_bytes = used_bytes - OLD.size
      WHERE name = OLD.account;
    END""",
    f"""CREATE TRIGGER quarantine_used_update
    AFTER UPDATE OF state, size, account ON quarantine_messages
    WHEN (OLD.state IN {COUNTED}) <> (NEW.state IN {COUNTED}) OR OLD.size <> NEW.size
      OR OLD.account <> NEW.account BEGIN
      UPDATE quarantine_accounts SET used_bytes = used_bytes - OLD.size
      WHERE name = OLD.account AND OLD.state IN {COUNTED};
      UPDATE quarantine_accounts SET used_bytes = used_bytes + NEW.size
      WHERE name = NEW.account AND NEW.state IN {COUNTED};
    END""",
]

POSTGRESQL = [
    f"""CREATE FUNCTION quarantine_used_bytes() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP = 'UPDATE' AND (OLD.state IN {COUNTED}) = (NEW.state IN {COUNTED})
          AND OLD.size = NEW.size AND OLD.account = NEW.account THEN
        RETURN NULL;
      END IF;
      IF TG_OP IN ('DELETE', 'UPDATE') AND OLD.state IN {COUNTED} THEN
        UPDATE quarantine_accounts SET used_bytes = used_bytes - OLD.size
        WHERE name = OLD.account;
      END IF;
      IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.state IN {COUNTED} THEN
        UPDATE quarantine_accounts SET used_bytes = used_bytes + NEW.size
        WHERE name = NEW.account;
      END IF;
      RETURN NULL;
    END $$""",
    """CREATE TRIGGER quarantine_used_bytes
    AFTER INSERT OR DELETE OR UPDATE OF state, size, account ON quarantine_messages
    FOR EACH ROW EXECUTE FUNCTION quarantine_used_bytes()""",
]


def upgrade() -> None:
    op.add_column("quarantine_accounts", sa.Column("used_bytes", sa.BigInteger(),
                                                   nullable=False, server_default="0"))
    op.execute(f"""UPDATE quarantine_accounts SET used_bytes = COALESCE((
        SELECT SUM(size) FROM quarantine_messages
        WHERE account = quarantine_accounts.name AND state IN {COUNTED}), 0)""")
    for statement in POSTGRESQL if op.get_bind().dialect.name == "postgresql" else SQLITE:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER quarantine_used_bytes ON quarantine_messages")
        op.execute("DROP FUNCTION quarantine_used_bytes()")
    else:
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER quarantine_used_{name}")
    with op.batch_alter_table("quarantine_accounts") as batch:
        batch.drop_column("used_bytes")
