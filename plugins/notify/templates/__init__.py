"""Shipped notification templates (package data, found by the Jinja2 PackageLoader)."""
