"""Sieve scripts, the learn-pipe wrapper and the Dovecot snippet, as Jinja2 templates.

Rendered by ``ie-config enable-incoming`` (see ``ie_plugins.incoming.dovecot``).
"""
