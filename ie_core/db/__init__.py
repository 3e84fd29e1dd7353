"""Storage: the declarative Base plugins build on, the Database handle, migrations."""

from ie_core.db.base import Base, UTCDateTime, new_id
from ie_core.db.queries import among
from ie_core.db.session import Database, describe_error

__all__ = ["Base", "Database", "UTCDateTime", "among", "describe_error", "new_id"]
