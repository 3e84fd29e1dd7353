"""Jinja2 templates for the MTA snippets and systemd units (a package so they ship)."""
