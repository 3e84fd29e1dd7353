"""ie's marked regions come out exactly; master.cf entries are found; units render."""

from __future__ import annotations

import pytest

from ie_plugins.mta import managed, services
from ie_plugins.mta.postfix import services as master_services


@pytest.mark.parametrize("text", ["", "a = 1\n", "a = 1", "x\r\ny\r\n", "# c\n\n\tz\n"])
def test_strip_undoes_append(text):
    wired = managed.append(text, ["b = 2", "  -o c=3"])
    assert wired != text and managed.has_regions(wired)
    assert managed.strip(wired) == text


def test_a_replaced_line_comes_back_byte_for_byte():
    original = "one\ndaemon_smtp_ports = 25 : 587  \ntwo\n"
    lines = original.splitlines(keepends=True)
    wired = lines[0] + managed.region(["daemon_smtp_ports = 25 : 587 : 10026"],
                                      replaced=[lines[1]]) + lines[2]
    assert "daemon_smtp_ports = 25 : 587 : 10026\n" in wired
    assert managed.strip(wired) == original


@pytest.mark.parametrize("broken", [managed.BEGIN + "\nx\n", "x\n" + managed.END + "\n",
                                    managed.BEGIN + "\n" + managed.BEGIN + "\n"])
def test_unpaired_markers_are_refused(broken):
    with pytest.raises(managed.RegionError):
        managed.strip(broken)


def test_master_cf_entries_span_their_continuation_lines_and_comments():
    lines = ("# comment\nsmtp inet n - y - - smtpd\n  -o a=1\n  # note\n\n  -o b=2\n"
             "pickup unix n - y 60 1 pickup\n").splitlines(keepends=True)
    smtp, pickup = master_services(lines)
    assert (smtp.key, smtp.command, smtp.first, smtp.last) == ("smtp/inet", "smtpd", 1, 5)
    assert (pickup.key, pickup.first, pickup.last) == ("pickup/unix", 6, 6)


def test_systemd_units_start_this_installation_with_this_config(make_app, tmp_path):
    (tmp_path / "ie.toml").touch()
    app = make_app(config=tmp_path / "ie.toml")
    units = services.render_units(app)
    assert "ie-filterd.service" in units
    unit = units["ie-filterd.service"]
    assert f"{services.bindir()}/ie-filterd --config {tmp_path / 'ie.toml'}" in unit
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit
