"""ie-web's page templates (Jinja2, autoescaped)."""
