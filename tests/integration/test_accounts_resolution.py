"""Account resolution: ie's domain map (ie-cli domains), /etc/userdomains, fallback root."""

from __future__ import annotations

import json
import subprocess

from tests.fixtures.daemon import BIN, write_config


def cli(cfg, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "ie-cli"), "--config", str(cfg), *args],
                          capture_output=True, text=True, timeout=60)


def check_account(cfg, mail_from: str) -> str:
    out = cli(cfg, "check", "--json", "--mail-from", mail_from, "-")
    return json.loads(out.stdout)["account"] if out.returncode == 0 else out.stderr


def test_domain_map_then_userdomains_then_root(tmp_path, db_url):
    userdomains = tmp_path / "userdomains"
    userdomains.write_text("cpanel.example: cpuser\n*: nobody\n")
    cfg = write_config(tmp_path / "ie.toml", {
        "ie.data_dir": str(tmp_path / "d"), "ie.database_url": db_url,
        "identity.userdomains_file": str(userdomains)})
    assert subprocess.run([str(BIN / "ie-config"), "--config", str(cfg), "db", "upgrade"],
                          capture_output=True).returncode == 0
    assert cli(cfg, "domains", "set", "Shop.Example", "shopacct").stdout.strip() == "OK"
    assert check_account(cfg, "sales@shop.example") == "shopacct"
    assert check_account(cfg, "x@mail.shop.example") == "shopacct"  # subdomain
    assert check_account(cfg, "x@cpanel.example") == "cpuser"
    assert check_account(cfg, "x@unknown.example") == "root"
    listed = cli(cfg, "domains", "list", "--json")
    assert '"domain": "shop.example", "account": "shopacct"' in listed.stdout
    assert cli(cfg, "domains", "remove", "shop.example").returncode == 0
    assert check_account(cfg, "sales@shop.example") == "root"


def test_bad_input_is_one_line_and_non_zero(tmp_path):
    cfg = write_config(tmp_path / "ie.toml", {"ie.data_dir": str(tmp_path / "d")})
    subprocess.run([str(BIN / "ie-config"), "--config", str(cfg), "db", "upgrade"],
                   capture_output=True, check=True)
    for args in (["domains", "set", "exa mple.com", "acct"],
                 ["domains", "set", "example.com", "../etc"],
                 ["domains", "remove", "never.example"],
                 ["check", str(tmp_path / "missing.eml")],
                 ["check", str(tmp_path)]):
        out = cli(cfg, *args)
        assert out.returncode != 0, args
        assert len(out.stderr.strip().splitlines()) == 1, (args, out.stderr)
        assert "Traceback" not in out.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[filter]\nnope = 1\n")
    for args in (["domains", "list"], ["check", "-"]):
        out = cli(bad, *args)
        assert out.returncode != 0 and out.stderr.strip() == (
            f"ie-cli: error: unknown configuration key 'filter.nope' in {bad}")
