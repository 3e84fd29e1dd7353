"""The ``ie-cli`` and ``ie-config`` command lines (installed as ``ie_cli``)."""
