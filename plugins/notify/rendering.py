"""Jinja2 templates: shipped in the package, overridable by files in a directory.

Each kind of notification has three templates: ``KIND.subject.j2``, ``KIND.txt.j2`` and
``KIND.html.j2``; files starting with ``_`` are partials they include.  The HTML ones
autoescape everything they print.  An override file with the same name in
``notify.template_dir`` wins; if it cannot be read, does not compile or fails to render,
the shipped template is used and a warning says why.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    TemplateError,
    select_autoescape,
)

log = logging.getLogger("ie.notify")

KINDS = ("admin_held", "admin_summary", "limit_exceeded", "account_blocked", "owner_digest",
         "owner_action")
PARTS = ("subject", "txt", "html")


def _environment(loader: BaseLoader) -> Environment:
    return Environment(loader=loader, undefined=StrictUndefined, keep_trailing_newline=True,
                       autoescape=select_autoescape(enabled_extensions=("html.j2",),
                                                    default_for_string=False,
                                                    default=False))


class Templates:
    def __init__(self, override_dir: str) -> None:
        shipped = PackageLoader("ie_plugins.notify", "templates")
        self._shipped = _environment(shipped)
        self._dir = Path(override_dir) if override_dir else None
        # An override may include the shipped partials (``_held.txt.j2``...).
        self._override = (_environment(ChoiceLoader([FileSystemLoader(override_dir), shipped]))
                          if self._dir else None)

    def render(self, kind: str, part: str, context: dict[str, Any]) -> str:
        name = f"{kind}.{part}.j2"
        override = self._render_override(name, context)
        if override is not None:
            return override
        return self._shipped.get_template(name).render(context)

    def _render_override(self, name: str, context: dict[str, Any]) -> str | None:
        if self._override is None or self._dir is None:
            return None
        path = self._dir / name
        if not path.is_file():
            log.debug("event=template_shipped template=%s reason=no_override_file", name)
            return None
        try:
            return self._override.get_template(name).render(context)
        except (TemplateError, OSError, UnicodeDecodeError) as err:
            lineno = getattr(err, "lineno", None)
            where = f" line {lineno}" if lineno else ""
            log.warning("event=template_fallback template=%s reason=%s%s error=%s", path,
                        type(err).__name__, where, " ".join(str(err).split())[:200])
            return None
