"""Where the schema comes from: core's folder and each plugin's (``ie_migration_locations``),
plugins registered in code as well as installed ones, and the errors when a folder is
missing or a disabled plugin cannot even be imported."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect

from ie_core import hookimpl
from ie_core.db import Database, migrate
from ie_core.errors import ConfigError, SchemaBehindError
from ie_core.pluginmanager import Hooks, make_plugin_manager

SAMPLE_REVISIONS = (Path(__file__).resolve().parents[1] / "fixtures" / "sample_plugin"
                    / "ie_sample_plugin" / "migrations")


class Declares:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @hookimpl
    def ie_migration_locations(self) -> list[str]:
        return [str(self.folder)]


def test_a_plugin_registered_in_code_gets_its_table(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'ie.db'}")
    hooks = Hooks(make_plugin_manager(extra=[("notes", Declares(SAMPLE_REVISIONS))]))
    assert ("notes", str(SAMPLE_REVISIONS)) in hooks.migration_locations()
    assert "sample_0001" in migrate.wanted_heads(db, hooks)
    migrate.upgrade(db, hooks=hooks)
    assert "sample_notes" in inspect(db.engine).get_table_names()
    migrate.check(db, hooks=hooks)
    # without that plugin nothing installed explains its version row: one clear error
    with pytest.raises(SchemaBehindError, match="no installed plugin provides: sample_0001"):
        migrate.check(db)
    db.dispose()


def test_a_missing_migration_folder_names_the_plugin(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'ie.db'}")
    hooks = Hooks(make_plugin_manager(extra=[("halfway", Declares(tmp_path / "gone"))]))
    with pytest.raises(ConfigError, match=r"plugin 'halfway': its migration folder .*gone "
                                          "does not exist"):
        migrate.upgrade(db, hooks=hooks)
    assert inspect(db.engine).get_table_names() == []
    db.dispose()


def test_a_disabled_plugin_that_cannot_be_imported_does_not_stop_the_schema(
        tmp_path, monkeypatch):
    site = tmp_path / "site"
    dist = site / "ie_broken-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ie-broken\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[ie]\nbroken = ie_no_such_module_here\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(migrate, "_installed_locations",
                        migrate._installed_locations.__wrapped__)  # not the cached scan
    with pytest.raises(ConfigError, match="plugin 'broken' .* failed to load"):
        make_plugin_manager()
    db = Database(f"sqlite:///{tmp_path / 'ie.db'}")
    hooks = Hooks(make_plugin_manager(disabled=["broken"]))
    migrate.upgrade(db, hooks=hooks)
    migrate.check(db, hooks=hooks)
    assert "0014_quarantine_filter_index" in migrate.current_heads(db)
    db.dispose()
