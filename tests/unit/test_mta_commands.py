"""``ie-config enable`` / ``disable`` without a real MTA: the MTA's programs are stubbed,
the files are real (in a temporary directory)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import ie_core.config
from ie_core import App
from ie_core.app import create_app
from ie_core.commands import CliState
from ie_plugins import mta
from ie_plugins.mta import exim, managed, postfix, services
from ie_plugins.mta.files import FileChange

EXIM_CONF = """domainlist local_domains = example.test
acl_smtp_rcpt = acl_check_rcpt
begin acl
acl_check_rcpt:
  accept
begin routers
dnslookup:
  driver = dnslookup
begin transports
remote_smtp:
  driver = smtp
"""
MASTER_CF = "smtp      inet  n       -       y       -       -       smtpd\n"


@pytest.fixture
def tmp_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    """An App with no configuration file, whose default place (``ETC/ie/ie.toml``) is in a
    directory that does not exist yet, as on a fresh install."""
    default = tmp_path / "etc" / "ie" / "ie.toml"
    monkeypatch.setattr(ie_core.config, "DEFAULT_CONFIG_PATH", default)
    monkeypatch.delenv("IE_CONFIG", raising=False)
    monkeypatch.setattr(services, "systemd_host", lambda: False)
    (tmp_path / "postfix").mkdir()
    (tmp_path / "exim.conf").write_text(EXIM_CONF)
    app = create_app(None, overrides={
        "ie.data_dir": str(tmp_path / "data"), "mta.postfix_dir": str(tmp_path / "postfix"),
        "mta.exim_config": str(tmp_path / "exim.conf"), "mta.exim_binary": "/bin/true",
        "quarantine.cli_socket": str(tmp_path / "cli.sock"),
        "ie.pid_file": str(tmp_path / "ie.pid")})  # never a daemon running on this host
    assert app.config.path is None
    yield app
    app.close()


def invoke(app: App, command: str, *args: str) -> Result:
    cmd = mta.enable if command == "enable" else mta.disable
    return CliRunner().invoke(cmd, list(args), obj=CliState(lambda: app),
                              prog_name="ie-config")


def test_exim_enable_creates_ies_config_and_its_directory_disable_removes_the_file(
        tmp_app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exim.EximWiring, "reload", lambda self: "reloaded")
    ie_toml = tmp_path / "etc" / "ie" / "ie.toml"
    on = invoke(tmp_app, "enable", "--mta", "exim")
    assert on.exit_code == 0, on.output
    assert 'auth_header = "X-IE-Auth-User"' in ie_toml.read_text()
    assert on.output.splitlines()[-1] == (
        f"ie's configuration changed (no ie-filterd runs on {tmp_path / 'ie.pid'}: if one "
        "runs on another pid file, 'ie-config reload --pidfile FILE'); this host does not "
        "run systemd: start ie yourself, e.g. 'ie-filterd &' from your init system (see "
        "docs/operations.md, 'Hosts without systemd')")
    assert ie_toml.parent.stat().st_mode & 0o777 == 0o755
    assert invoke(tmp_app, "enable", "--mta", "exim").exit_code == 0  # nothing to change
    off = invoke(tmp_app, "disable", "--mta", "exim")
    assert off.exit_code == 0, off.output
    assert not ie_toml.exists()
    assert (tmp_path / "exim.conf").read_text() == EXIM_CONF


def test_rollback_removes_the_directories_it_made(tmp_path: Path) -> None:
    change = FileChange(tmp_path / "backups", "stamp")
    change.write(tmp_path / "a" / "b" / "f.conf", b"x\n")
    change.rollback()
    assert list(tmp_path.iterdir()) == []


def test_a_file_ie_created_is_removed_only_while_it_holds_nothing_else() -> None:
    text = managed.new_file(["[identity]", 'auth_header = "X"'])
    assert managed.created(text) and managed.strip(text) == ""
    assert not managed.created(text + "[mta]\n")
    assert not managed.created(managed.append("", ["[identity]"]))  # was an empty file


def _postfix_run(args: Sequence[str], timeout: float = 60.0) -> tuple[int, str]:
    """postconf (nothing set), postfix check and status succeed; postfix reload fails."""
    if args[-1] == "reload":
        return 1, "postfix/postfix-script: fatal: cannot reload\n"
    return 0, ""


def test_a_failed_postfix_reload_is_one_line_and_enable_goes_on(
        tmp_app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "postfix" / "master.cf").write_text(MASTER_CF)
    monkeypatch.setattr(postfix, "run", _postfix_run)
    done = invoke(tmp_app, "enable", "--mta", "postfix")
    assert done.exit_code == 0, done.output
    assert (f"postfix reload failed (postfix/postfix-script: fatal: cannot reload): the "
            f"checked configuration is in place, run '/usr/sbin/postfix -c {tmp_path}/postfix "
            "reload' by hand") in done.output
    assert "does not run systemd" in done.output  # services.install still ran
    assert managed.has_regions((tmp_path / "postfix" / "master.cf").read_text())


def test_hand_edited_markers_are_one_line_when_choosing_the_mta(
        tmp_app: App, tmp_path: Path) -> None:
    master = tmp_path / "postfix" / "master.cf"
    master.write_text(MASTER_CF + managed.BEGIN + "\n")  # never closed
    done = invoke(tmp_app, "enable")
    assert done.exit_code == 1
    assert done.output.count("\n") == 1
    assert f"ie-config: error: cannot tell whether ie is wired into postfix: {master}: an " \
           "ie-filter region is never closed" in done.output


def _postfix_ok(args: Sequence[str], timeout: float = 60.0) -> tuple[int, str]:
    return 0, ""


def test_a_fresh_install_starts_its_daemons_without_naming_a_missing_config_file(
        tmp_app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Postfix needs no /etc/ie/ie.toml, and a fresh install has none: ``--config`` would
    make the daemons exit ('configuration file ... does not exist'), so neither the start
    instruction nor the units name one (the daemons read that file once it exists)."""
    (tmp_path / "postfix" / "master.cf").write_text(MASTER_CF)
    monkeypatch.setattr(postfix, "run", _postfix_ok)
    done = invoke(tmp_app, "enable", "--mta", "postfix")
    assert done.exit_code == 0, done.output
    assert done.output.splitlines()[-1] == (
        "this host does not run systemd: start ie yourself, e.g. 'ie-filterd &' from your "
        "init system (see docs/operations.md, 'Hosts without systemd')")
    units = services.render_units(tmp_app)
    assert units
    for name, unit in units.items():
        [start] = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
        assert start == f"ExecStart={services.bindir()}/{name.removesuffix('.service')}"


def test_disable_says_what_became_of_ies_services_after_unwiring(
        tmp_app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "postfix" / "master.cf").write_text(MASTER_CF)
    monkeypatch.setattr(postfix, "run", _postfix_ok)
    assert invoke(tmp_app, "enable", "--mta", "postfix").exit_code == 0
    off = invoke(tmp_app, "disable", "--mta", "postfix")
    assert off.exit_code == 0, off.output
    restored, stopped = off.output.splitlines()
    assert restored.startswith("postfix: restored ")
    assert stopped == ("this host does not run systemd: stop ie yourself ('ie-config stop', "
                       "and ie-notifyd and ie-web from your init system)")


@pytest.mark.parametrize("hand", ["  -o { content_filter = ie_filter:[127.0.0.1]:10027 }\n",
                                  "  -o content_filter=ie_filter:[127.0.0.1]:10027\n"])
def test_a_service_wired_to_ie_by_hand_is_taken_over(
        tmp_app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hand: str) -> None:
    master = tmp_path / "postfix" / "master.cf"
    master.write_text(MASTER_CF + hand + "  -o receive_override_options=no_address_mappings\n")
    monkeypatch.setattr(postfix, "run", _postfix_ok)
    assert invoke(tmp_app, "enable", "--mta", "postfix").exit_code == 0
    assert invoke(tmp_app, "disable", "--mta", "postfix").exit_code == 0
    assert master.read_text() == MASTER_CF  # the hand wiring does not come back


def test_a_hand_wired_line_ie_cannot_take_out_alone_is_one_clear_error(
        tmp_app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    master = tmp_path / "postfix" / "master.cf"
    master.write_text(MASTER_CF + "  -o content_filter=ie_filter:[127.0.0.1]:10027 "
                      "-o smtpd_tls_security_level=may\n")
    monkeypatch.setattr(postfix, "run", _postfix_ok)
    done = invoke(tmp_app, "enable", "--mta", "postfix")
    assert done.exit_code == 1
    assert done.output == (
        "ie-config: error: cannot enable postfix: master.cf service smtp/inet sends its mail "
        "to ie (content_filter=ie_filter:[127.0.0.1]:10027) on a line that holds more: take "
        "that option out by hand, then run enable again\n")
