"""Root's ``ie-cli`` commands run in a real ``ie-filterd`` (the ``cli_server`` plugin):
the same output and exit code as when ``ie-cli`` runs them itself, only for the daemon's
uid, configuration file and data directory, and never twice."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.daemon import DaemonProcess, write_config
from tests.fixtures.paths import IE_CLI

ENV = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"}


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A short path (a Unix socket's path is at most 107 bytes; pytest's can be longer),
    that every user may traverse."""
    path = Path(tempfile.mkdtemp(prefix="ie-cs-", dir="/tmp"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def daemon(short_dir: Path, sink) -> Iterator[DaemonProcess]:
    d = DaemonProcess(short_dir, {"filter.reinject": f"127.0.0.1:{sink.port}",
                                  "filter.workers": 1})
    d.start()
    _wait_for(d.config.parent / "ie-data" / "commands.sock")
    yield d
    d.stop()


def _wait_for(path: Path) -> None:
    for _ in range(200):
        if path.exists():
            return
        threading.Event().wait(0.05)
    raise AssertionError(f"{path} did not appear")


def cli(config: Path, *args: str, env: dict[str, str] | None = None,
        user: tuple[int, int] | None = None) -> subprocess.CompletedProcess[bytes]:
    cmd = [IE_CLI, "--config", str(config), *args]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user[0]}", f"--regid={user[1]}", "--clear-groups", *cmd]
    return subprocess.run(cmd, capture_output=True, timeout=60, env={**ENV, **(env or {})})


def served_count(d: DaemonProcess) -> int:
    return d.log().count("event=cli_command ")


MANY = [f"recipient{i}@example.org" for i in range(3000)]
COMMANDS = [
    ("whitelist", "sender", "add", "boss@example.com"),
    ("whitelist", "sender", "list", "--json"),
    ("emails", "list", "--json"),
    ("accounts", "list", "--json"),
    ("am", "stats", "--since", "1h"),
    ("stats", "incoming", "--json"),
    ("emails", "list", "--limit", "x"),  # a mistake: one line, exit 1
    ("whitelist", "sender", "add", "not an address"),
    ("whitelist", "sender", "remove", "boss@example.com"),
    ("whitelist", "recipient", "add", *MANY),  # over 64 KiB: too long to send, run here
    ("whitelist", "recipient", "list", "--json"),
    ("whitelist", "recipient", "remove", *MANY),
]


def test_served_commands_answer_as_the_local_ones(daemon: DaemonProcess) -> None:
    served = [cli(daemon.config, *c) for c in COMMANDS]
    assert served_count(daemon) == len(COMMANDS) - 2  # not the two too long to send
    daemon.stop()  # now ie-cli runs each command itself, on the same database
    local = [cli(daemon.config, *c) for c in COMMANDS]
    for command, s, lo in zip(COMMANDS, served, local, strict=True):
        assert (s.returncode, s.stdout, s.stderr) == (lo.returncode, lo.stdout, lo.stderr), \
            command
    assert json.loads(served[1].stdout)["emails"] == ["boss@example.com"]
    assert served[6].returncode == 1
    assert served[6].stderr == b"ie-cli: error: --limit takes a whole number, not 'x'\n"
    assert served[7].returncode == 1 and served[7].stderr.count(b"\n") == 1
    assert len(json.loads(served[10].stdout)["emails"]) == len(MANY)


def test_commands_not_marked_served_run_in_ie_cli(daemon: DaemonProcess,
                                                  tmp_path: Path) -> None:
    message = tmp_path / "m.eml"
    message.write_bytes(b"From: a@example.com\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nhi\r\n")
    checked = cli(daemon.config, "check", "--json", str(message))  # reads a file of ours
    shown = cli(daemon.config, "emails", "show", "--id", "nope")  # may stream bytes
    helped = cli(daemon.config, "emails", "list", "--help")
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout)
    assert shown.returncode == 1 and b"nope" in shown.stderr
    assert helped.returncode == 0 and b"Usage: ie-cli emails list" in helped.stdout
    assert served_count(daemon) == 0


def test_another_configuration_file_is_not_served(daemon: DaemonProcess,
                                                  short_dir: Path) -> None:
    """The same data directory named by another file: that file may say anything else
    (another database), so ie-cli reads it and runs the command itself."""
    other = short_dir / "other.toml"
    shutil.copy(daemon.config, other)
    done = cli(other, "whitelist", "sender", "list", "--json")
    assert done.returncode == 0, done.stderr
    assert served_count(daemon) == 0
    by_env = subprocess.run([IE_CLI, "whitelist", "sender", "list", "--json"],
                            capture_output=True, env={**ENV, "IE_CONFIG": str(daemon.config)})
    assert by_env.returncode == 0 and served_count(daemon) == 1


def test_the_socket_is_the_daemon_users_only(daemon: DaemonProcess, short_dir: Path) -> None:
    sock = short_dir / "ie-data" / "commands.sock"
    assert sock.stat().st_mode & 0o777 == 0o600
    assert (short_dir / "ie-data").stat().st_mode & 0o777 == 0o700
    # Were it opened to everybody by mistake, the daemon still asks the kernel who
    # connects and serves its own uid only.
    os.chmod(sock.parent, 0o755)
    os.chmod(sock, 0o666)
    nobody = pwd.getpwnam("nobody")
    request = {"argv": ["whitelist", "sender", "list"],
               "config": os.path.realpath(daemon.config),
               "data_dir": os.path.realpath(sock.parent)}
    answer = json.loads(_as_user(nobody.pw_uid, nobody.pw_gid, sock, request))
    assert answer["served"] is False and "uid 0 only" in answer["why"]
    assert served_count(daemon) == 0


def _as_user(uid: int, gid: int, sock: Path, request: dict[str, object]) -> bytes:
    """The answer line to ``request`` sent on ``sock`` by a process of ``uid``."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: become the user, ask, pass the answer on
        code = 1
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(20)
                s.connect(str(sock))
                s.sendall(json.dumps(request).encode() + b"\n")
                os.write(write, s.makefile("rb").readline())
            code = 0
        except BaseException as err:
            os.write(write, repr(err).encode())
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as answer:
        line = answer.read()
    assert os.waitpid(pid, 0)[1] == 0, line
    return line


@pytest.mark.parametrize("request_line", [
    b"not json\n",
    b'{"argv": "whitelist sender list"}\n',
    b'{"argv": [1, 2]}\n',
    b"[" * 60_000 + b"\n",  # nested too deeply
])
def test_a_malformed_request_gets_a_refusal(daemon: DaemonProcess, short_dir: Path,
                                            request_line: bytes) -> None:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(30)
        s.connect(str(short_dir / "ie-data" / "commands.sock"))
        s.sendall(request_line)
        answer = json.loads(s.makefile("rb").readline())
    assert answer["served"] is False
    assert cli(daemon.config, "version").returncode == 0  # still up
    assert served_count(daemon) == 0


def _fake_daemon(path: Path, answer: bytes) -> threading.Thread:
    """A socket at ``path`` that reads one request, sends ``answer`` and closes."""
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(1)

    def serve() -> None:
        with server:
            conn, _ = server.accept()
            with conn:
                conn.makefile("rb").readline()
                conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def _configured(short_dir: Path) -> tuple[Path, Path]:
    """A configuration file and its data directory, the database made."""
    data = short_dir / "data"
    config = write_config(short_dir / "ie.toml", {"ie.data_dir": str(data)})
    made = subprocess.run([str(Path(IE_CLI).with_name("ie-config")), "--config", str(config),
                           "db", "upgrade"], capture_output=True, env=ENV)
    assert made.returncode == 0, made.stderr
    return config, data


def test_a_command_taken_and_not_answered_is_not_run_twice(short_dir: Path) -> None:
    """The daemon took the command and died before answering: it may have run, so
    ie-cli says so and does not run it again."""
    config, data = _configured(short_dir)
    thread = _fake_daemon(data / "commands.sock", b'{"served": true, "code": 0, "stdout": 9')
    done = cli(config, "whitelist", "sender", "add", "boss@example.com")
    thread.join(10)
    assert done.returncode == 1
    assert b"may or may not have run" in done.stderr and done.stderr.count(b"\n") == 1
    listed = json.loads(cli(config, "whitelist", "sender", "list", "--json").stdout)
    assert listed["emails"] == []


def test_a_refusal_runs_the_command_here(short_dir: Path) -> None:
    config, data = _configured(short_dir)
    thread = _fake_daemon(data / "commands.sock", b'{"served": false, "why": "busy"}\n')
    done = cli(config, "whitelist", "sender", "add", "boss@example.com")
    thread.join(10)
    assert done.returncode == 0, done.stderr
    listed = json.loads(cli(config, "whitelist", "sender", "list", "--json").stdout)
    assert listed["emails"] == ["boss@example.com"]


def test_commands_at_once_all_answer(daemon: DaemonProcess) -> None:
    """More commands at once than the daemon runs together: the rest run in ie-cli."""
    results: list[subprocess.CompletedProcess[bytes]] = []
    threads = [threading.Thread(target=lambda i=i: results.append(
        cli(daemon.config, "whitelist", "recipient", "add", f"r{i}@example.org")))
        for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [r.returncode for r in results] == [0] * 10, [r.stderr for r in results]
    listed = json.loads(cli(daemon.config, "whitelist", "recipient", "list", "--json").stdout)
    assert sorted(listed["emails"]) == sorted(f"r{i}@example.org" for i in range(10))
    assert 1 <= served_count(daemon) <= 11
