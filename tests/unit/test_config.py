"""The configuration file: defaults without a file, unknown keys rejected by name."""

from __future__ import annotations

import pytest

from ie_core import ConfigError, ConfigKey, create_app, hookimpl


def test_no_file_gives_working_defaults(tmp_path, monkeypatch):
    monkeypatch.delenv("IE_CONFIG", raising=False)
    cfg = tmp_path / "ie.toml"
    cfg.write_text("")
    app = create_app(cfg)
    assert app.config.get("filter.outgoing_listen") == "127.0.0.1:10025"
    assert app.config.get("filter.incoming_listen") == "127.0.0.1:10027"
    assert app.config.get("filter.reinject") == "127.0.0.1:10026"
    assert app.config.database_url.startswith("sqlite:///")


def test_explicit_file_that_does_not_exist_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        create_app(tmp_path / "missing.toml")


def test_ie_config_environment_variable_names_the_file(tmp_path, monkeypatch):
    cfg = tmp_path / "env.toml"
    cfg.write_text('[filter]\nreinject = "127.0.0.1:2526"\n')
    monkeypatch.setenv("IE_CONFIG", str(cfg))
    assert create_app().config.get("filter.reinject") == "127.0.0.1:2526"


@pytest.mark.parametrize("text, message", [
    ('[filter]\nreinjct = "x"\n', "unknown configuration key 'filter.reinjct'"),
    ('[nosuch]\nx = 1\n', "unknown configuration section '[nosuch]'"),
    ('[filter]\nmax_message_size = "big"\n', "'filter.max_message_size' must be of type int"),
    ('[filter]\nmax_message_size = true\n', "'filter.max_message_size' must be an integer"),
    ("[filter\n", "not valid TOML"),
])
def test_bad_files_are_rejected_with_the_key_name(tmp_path, text, message):
    cfg = tmp_path / "ie.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        create_app(cfg)


class KeyPlugin:
    @hookimpl
    def ie_config_keys(self):
        return [ConfigKey("sample", "level", int, 3, "a sample key")]


def test_plugins_add_keys_and_a_disabled_plugins_keys_are_unknown(tmp_path):
    cfg = tmp_path / "ie.toml"
    cfg.write_text("[sample]\nlevel = 7\n")
    app = create_app(cfg, extra_plugins=[("sample", KeyPlugin())])
    assert app.config.get("sample.level") == 7
    cfg.write_text('[sample]\nlevel = 7\n[plugins]\ndisabled = ["sample"]\n')
    with pytest.raises(ConfigError, match="unknown configuration section"):
        create_app(cfg, extra_plugins=[("sample", KeyPlugin())])


def test_the_services_process_rereads_a_default_file_created_after_start(tmp_path, monkeypatch):
    """A daemon started without a configuration file (a Postfix host) re-reads the default
    path when its services process is restarted, as a worker's reload does: ``ie-config
    enable --mta exim`` may have created the file since."""
    import ie_core.config
    from ie_core.daemon import _fresh

    default = tmp_path / "ie.toml"
    monkeypatch.setattr(ie_core.config, "DEFAULT_CONFIG_PATH", default)
    monkeypatch.delenv("IE_CONFIG", raising=False)
    running = create_app()
    assert running.config.path is None
    default.write_text(f'[ie]\ndata_dir = "{tmp_path / "d"}"\n'
                       '[identity]\nauth_header = "X-IE-Auth-User"\n')
    fresh = _fresh(running)
    assert fresh.config.path == default
    assert fresh.config.get("identity.auth_header") == "X-IE-Auth-User"
