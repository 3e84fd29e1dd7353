"""Two real non-root Unix users run the real ``ie-cli``; their requests go over the socket
the daemon serves, which learns who they are from the kernel (SO_PEERCRED).  Each sees
only its own account, guessing the other's ids reveals nothing, and the hourly release
limit binds them but not root."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.integration.test_quarantine_daemon import (
    EMAILS_LIST,
    Cli,
    MarkerPlugin,
    clock,  # noqa: F401  (real-time start)
    message,
    send,
    valid,
    write_config,
)


@pytest.fixture
def unix_users():
    """Two fresh users (removed afterwards); their names are their hosting accounts."""
    names = [f"ieq{uuid.uuid4().hex[:8]}" for _ in range(2)]
    for name in names:
        subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        "--user-group", name], check=True)
    try:
        yield [(n, pwd.getpwnam(n).pw_uid, pwd.getpwnam(n).pw_gid) for n in names]
    finally:
        for name in names:
            subprocess.run(["userdel", name], check=False)


@pytest.fixture
def public_dir():
    """A directory every user may traverse (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="ie-quarantine-", dir="/tmp"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_each_user_sees_only_its_own_mail(run_daemon, sink, tmp_path, public_dir, unix_users):
    socket_path = public_dir / "run" / "cli.sock"
    values = {"ie": {"data_dir": str(tmp_path / "data"),
                     "database_url": f"sqlite:///{tmp_path / 'ie.db'}"},
              "filter": {"reinject": f"127.0.0.1:{sink.port}", "reinject_timeout": 5.0},
              "quarantine": {"cli_socket": str(socket_path)},
              "pipeline": {"outgoing": ["blocked", "marker"]}}
    config = write_config(public_dir / "ie.toml", **values)
    os.chmod(config, 0o644)
    d = run_daemon(plugins=[("marker", MarkerPlugin())],
                   **{f"{s}.{k}": v for s, kv in values.items() for k, v in kv.items()})
    assert socket_path.stat().st_mode & 0o777 == 0o666
    assert socket_path.parent.stat().st_mode & 0o777 == 0o755
    (alice, a_uid, a_gid), (bob, b_uid, b_gid) = unix_users
    as_alice, as_bob, root = Cli(config, (a_uid, a_gid)), Cli(config, (b_uid, b_gid)), Cli(config)

    a_raw = message(subject="alice's")
    a_ids = [send(d.outgoing_port, a_raw, account=alice) for _ in range(7)]
    b_id = send(d.outgoing_port, message(subject="bob's"), account=bob)

    # The users cannot read the database or the message files themselves.
    for path in (tmp_path / "ie.db", tmp_path / "data" / "quarantine" / b_id):
        out = subprocess.run(["setpriv", f"--reuid={a_uid}", f"--regid={a_gid}",
                              "--clear-groups", "cat", str(path)], capture_output=True)
        assert out.returncode != 0

    a_list = valid(as_alice.json("emails", "list"), EMAILS_LIST)
    assert sorted(i["email_id"] for i in a_list["items"]) == sorted(a_ids)
    assert {i["account_name"] for i in a_list["items"]} == {alice}
    b_list = valid(as_bob.json("emails", "list"), EMAILS_LIST)
    assert [i["email_id"] for i in b_list["items"]] == [b_id]
    assert as_alice("emails", "show", "--id", a_ids[0], "--raw").stdout == a_raw

    # Guessing bob's id tells alice nothing: the same answer as for an id that never was.
    never = str(uuid.uuid4())
    for args in (["emails", "show", "--id"], ["emails", "release", "--ids"],
                 ["emails", "remove", "--ids"]):
        answers = []
        for guess in (b_id, never):
            out = as_alice(*args, guess, check=False)
            assert out.returncode == 1
            answers.append(out.stderr.decode().replace(guess, "ID"))
        assert answers[0] == answers[1], answers
        assert "no held message with id ID" in answers[0]
    out = as_alice("emails", "list", "-a", bob, check=False)
    assert out.returncode == 1
    assert out.stderr.decode() == f"ie-cli: error: you may only act on your own account " \
                                  f"({alice})\n"
    out = as_alice("accounts", "edit", "-a", alice, "--releases-limit", "100", check=False)
    assert out.returncode == 1 and "only root" in out.stderr.decode()
    assert [i["email_id"] for i in root.json("emails", "list", "-a", bob)["items"]] == [b_id]

    # The release limit: five an hour for alice; the sixth is refused, root's is not.
    assert as_alice("emails", "release", "--ids", ",".join(a_ids[:5])).stdout == b"OK\n"
    out = as_alice("emails", "release", "--ids", a_ids[5], check=False)
    assert out.returncode == 1
    assert "release limit reached: 5 per hour" in out.stderr.decode()
    assert root("emails", "release", "--ids", a_ids[5]).stdout == b"OK\n"
    root("accounts", "edit", "-a", alice, "--releases-limit", "6")  # applies at once
    assert as_alice("emails", "release", "--ids", a_ids[6]).stdout == b"OK\n"
    got = sink.wait_for(7)
    assert len(got) == 7
    assert all(m.data.endswith(a_raw) for m in got)
    assert sum(f"by={alice} ".encode() in m.data.split(b"\r\n", 1)[0] for m in got) == 6
    assert as_alice.json("emails", "list")["max_count"] == 0
    assert as_bob.json("emails", "list")["max_count"] == 1
    [acct] = as_bob.json("accounts", "list")["items"]
    assert acct["name"] == bob

    # The owner's own switches (incoming opt-out): its own account only, nothing else.
    edited = as_bob("accounts", "edit", "-a", bob, "--incoming", "off", "--json").stdout
    assert json.loads(edited)["incoming"] == "off"  # the edited row, as Imunify prints it
    assert as_bob.json("accounts", "list")["items"][0]["incoming"] == "off"
    out = as_bob("accounts", "edit", "-a", alice, "--incoming", "off", check=False)
    assert out.returncode == 1 and "only act on your own account" in out.stderr.decode()
    out = as_bob("accounts", "edit", "-a", bob, "--incoming", "on", "--state", "active",
                 check=False)
    assert out.returncode == 1 and "only root" in out.stderr.decode()
