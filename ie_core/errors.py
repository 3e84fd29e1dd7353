"""Exceptions with a message fit for an admin's terminal (one line, no traceback)."""


class IeError(Exception):
    """Base class: ``str(err)`` is the one line the CLI prints."""


class ConfigError(IeError):
    """The configuration file is missing, unreadable or has a bad or unknown key."""


class SchemaBehindError(IeError):
    """The database schema is older than this version of ie."""


class NotFound(IeError):
    """An id, account or object does not exist (or the caller may not know it does)."""


class PermissionDenied(IeError):
    """The caller may not do this."""


class InvalidInput(IeError):
    """A value given on the command line or over the API is not acceptable."""
