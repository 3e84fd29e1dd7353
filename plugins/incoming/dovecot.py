"""Writing (and purging) the Dovecot side of incoming filtering.

``ie-config enable-incoming`` renders the templates of the ``ie_sieve`` package: one
configuration snippet in Dovecot's ``conf.d`` (every setting ie needs, nothing edited
elsewhere, so removing the file restores the configuration), the global ``sieve_before``
script, the two IMAPSieve scripts and the learn-pipe wrapper.  Scripts are compiled with
``sievec`` so the mail-uid processes never write ``.svbin`` files.  Every write is atomic
(temporary file, fsync, rename) and skipped when the content is already there, so a
second run changes nothing.

Settings an admin already has are kept: ``sieve_before`` and ``imapsieve_mailboxN`` take
the first free index, ``sieve_plugins`` and ``sieve_global_extensions`` are extended, an
existing ``sieve_pipe_bin_dir`` is used.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import jinja2

from ie_core import App, ConfigError
from ie_plugins.incoming.policy import JUNK_HEADER
from ie_plugins.incoming.spool import spool_dir

SNIPPET_NAME = "99-ie-incoming.conf"
MARKER = "# Written by ie-config enable-incoming"
PIPE_PROGRAM = "ie-learn"
SCRIPTS = ("spam-to-junk.sieve", "report-spam.sieve", "report-ham.sieve")
# module file -> what is missing when it is absent
REQUIRED_MODULES = {
    "lib90_sieve_plugin.so": "Pigeonhole Sieve (package dovecot-sieve)",
    "lib95_imap_sieve_plugin.so": "the imap_sieve plugin (package dovecot-sieve)",
    "sieve/lib90_sieve_imapsieve_plugin.so": "the sieve_imapsieve plugin (dovecot-sieve)",
    "sieve/lib90_sieve_extprograms_plugin.so": "the sieve_extprograms plugin (dovecot-sieve)",
}
OUR_PLUGINS = ("sieve_imapsieve", "sieve_extprograms")
OUR_EXTENSIONS = ("+vnd.dovecot.pipe", "+vnd.dovecot.environment")
TOOL_TIMEOUT = 60.0  # seconds a Dovecot tool (doveconf, sievec, doveadm) may take
_PLUGIN_LINE = re.compile(r"^\s+([A-Za-z0-9_]+)\s*=\s*(.*?)\s*$")
# What may reach a Sieve string, a Dovecot setting and a shell word unquoted: no quote,
# backslash, $, {, }, #, IMAP wildcard, control character or newline.
_MAILBOX = re.compile(r"^\w[\w .+/-]{0,99}$")
_PATH = re.compile(r"^/[A-Za-z0-9._/-]{0,250}$")


def checked_mailbox(key: str, value: str) -> str:
    """``value`` when it is a safe folder name; :class:`ConfigError` (one line) if not."""
    if not _MAILBOX.match(value) or value != value.strip() or ".." in value:
        raise ConfigError(f"{key} {value!r} is not a usable folder name: letters, digits, "
                          "spaces and . _ - / + only (it goes into Sieve scripts and "
                          "Dovecot's configuration)")
    return value


def checked_path(key: str, value: Path) -> Path:
    """``value`` when it is a plain absolute path; :class:`ConfigError` (one line) if not."""
    text = str(value)
    if not _PATH.match(text) or "/../" in text + "/" or text.endswith("/.."):
        raise ConfigError(f"{key} {text!r} is not a usable path: absolute, letters, digits "
                          "and . _ / - only (it goes into Dovecot's configuration and the "
                          "learn-pipe script)")
    return value


@dataclass(frozen=True)
class Layout:
    """Where everything goes (from the ``incoming.*`` configuration keys)."""

    config: Path
    conf_d: Path
    modules: Path
    sieve_dir: Path
    spool: Path
    data_dir: Path
    mail_user: str
    junk: str
    trash: str
    max_bytes: int
    max_queued: int

    @classmethod
    def from_app(cls, app: App, conf_d: str | None = None,
                 config: str | None = None) -> Layout:
        get = app.config.get
        return cls(config=Path(config or get("incoming.dovecot_config")),
                   conf_d=Path(conf_d or get("incoming.dovecot_conf_d")),
                   modules=Path(get("incoming.dovecot_modules")),
                   sieve_dir=checked_path("incoming.sieve_dir", Path(get("incoming.sieve_dir"))),
                   spool=checked_path("incoming.learn_spool", spool_dir(app)),
                   data_dir=app.config.data_dir,
                   mail_user=get("incoming.mail_user"),
                   junk=checked_mailbox("incoming.junk_mailbox", get("incoming.junk_mailbox")),
                   trash=checked_mailbox("incoming.trash_mailbox",
                                         get("incoming.trash_mailbox")),
                   max_bytes=get("incoming.learn_max_bytes"),
                   max_queued=get("incoming.learn_max_queued"))

    @property
    def snippet(self) -> Path:
        return self.conf_d / SNIPPET_NAME


@dataclass(frozen=True)
class Result:
    changed: list[str]
    reloaded: bool
    detail: str


def missing_requirements(layout: Layout) -> list[str]:
    problems = [f"{what} is not installed ({layout.modules / name} is missing)"
                for name, what in REQUIRED_MODULES.items()
                if not (layout.modules / name).is_file()]
    for tool in ("sievec", "doveconf", "doveadm"):
        if shutil.which(tool) is None:
            problems.append(f"{tool} is not on PATH (package dovecot-core / dovecot-sieve)")
    if not layout.config.is_file():
        problems.append(f"Dovecot configuration {layout.config} does not exist")
    if not layout.conf_d.is_dir():
        problems.append(f"Dovecot's conf.d directory {layout.conf_d} does not exist "
                        "(--conf-d or incoming.dovecot_conf_d)")
    try:
        pwd.getpwnam(layout.mail_user)
    except KeyError:
        problems.append(f"the mail user {layout.mail_user!r} does not exist "
                        "(incoming.mail_user: the user Dovecot delivers mail as)")
    return problems


def check_settings(app: App) -> None:
    """Refuse, with one line, folder names and paths that are unsafe in the scripts."""
    Layout.from_app(app)


def check_requirements(layout: Layout) -> None:
    problems = missing_requirements(layout)
    if problems:
        raise ConfigError("cannot enable incoming filtering: " + "; ".join(problems))


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    """Run a Dovecot tool; a missing program is exit 127, one that runs past
    :data:`TOOL_TIMEOUT` exit 124 (the reason in ``stderr``), so every caller reports one
    line."""
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=TOOL_TIMEOUT,
                              check=False)
    except FileNotFoundError:
        return subprocess.CompletedProcess(args, 127, "", f"{args[0]}: not found")
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(
            args, 124, "", f"{args[0]}: no answer after {TOOL_TIMEOUT:g} seconds")


def plugin_settings(layout: Layout) -> dict[str, str]:
    """The ``plugin { }`` settings Dovecot currently sees."""
    proc = _run("doveconf", "-c", str(layout.config), "-n", "plugin")
    if proc.returncode != 0:
        raise ConfigError(f"doveconf -c {layout.config} failed: {_first_line(proc.stderr)}")
    return {m.group(1): m.group(2) for line in proc.stdout.splitlines()
            if (m := _PLUGIN_LINE.match(line))}


def _first_free(used: dict[str, str], key: str, ours: str) -> int:
    """First N where setting KEY(N) is unset or already ours (KEY, KEY2, KEY3...)."""
    n = 1
    while used.get(key if n == 1 else f"{key}{n}", "") not in ("", ours):
        n += 1
    return n


def _mailbox_index(used: dict[str, str], ours: set[str]) -> int:
    def free(i: int) -> bool:
        return not used.get(f"imapsieve_mailbox{i}_name") or \
            used.get(f"imapsieve_mailbox{i}_before", "") in ours

    n = 1
    while not (free(n) and free(n + 1)):
        n += 1
    return n


def _extend(value: str, extra: tuple[str, ...]) -> str:
    tokens = value.split()
    return " ".join(tokens + [t for t in extra if t not in tokens])


def render_all(layout: Layout, used: dict[str, str]) -> dict[Path, tuple[str, int]]:
    """path -> (content, mode) of every file enable-incoming writes (scripts compiled
    separately)."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("ie_sieve", "."),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             autoescape=False)
    sieve_dir = str(layout.sieve_dir)
    ours_before = {f"file:{sieve_dir}/report-spam.sieve", f"file:{sieve_dir}/report-ham.sieve"}
    before_n = _first_free(used, "sieve_before", f"{sieve_dir}/spam-to-junk.sieve")
    pipe_dir = used.get("sieve_pipe_bin_dir") or str(layout.sieve_dir / "bin")
    values = {
        "junk": layout.junk, "trash": layout.trash, "junk_header": JUNK_HEADER,
        "pipe_program": PIPE_PROGRAM, "sieve_dir": sieve_dir, "pipe_dir": pipe_dir,
        "spool": str(layout.spool), "max_bytes": layout.max_bytes,
        "max_files": layout.max_queued,
        "before_key": "sieve_before" if before_n == 1 else f"sieve_before{before_n}",
        "mailbox": _mailbox_index(used, ours_before),
        "sieve_plugins": _extend(used.get("sieve_plugins", ""), OUR_PLUGINS),
        "global_extensions": _extend(used.get("sieve_global_extensions", ""),
                                     OUR_EXTENSIONS),
    }
    files = {layout.snippet: (env.get_template("dovecot-incoming.conf.j2").render(values),
                              0o644),
             Path(pipe_dir) / PIPE_PROGRAM: (env.get_template("ie-learn.sh.j2").render(values),
                                             0o755)}
    for script in SCRIPTS:
        files[layout.sieve_dir / script] = (env.get_template(f"{script}.j2").render(values),
                                            0o644)
    return files


def write_atomic(path: Path, data: bytes, mode: int) -> bool:
    """Write ``path`` unless it already holds exactly ``data``; True when it changed."""
    try:
        if path.read_bytes() == data and (path.stat().st_mode & 0o7777) == mode:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def _ensure_ours(path: Path) -> None:
    if path.exists() and not path.read_text(errors="replace").startswith(MARKER):
        raise ConfigError(f"{path} exists and was not written by ie; move it away first")


def compile_script(layout: Layout, script: Path) -> bool:
    """Compile ``script`` next to it; True when the ``.svbin`` changed."""
    target = script.with_suffix(".svbin")
    fd, tmp = tempfile.mkstemp(dir=script.parent, prefix=f".{script.stem}.", suffix=".svbin")
    os.close(fd)
    try:
        proc = _run("sievec", "-c", str(layout.config), str(script), tmp)
        if proc.returncode != 0:
            raise ConfigError(f"sievec could not compile {script}: "
                              f"{_first_line(proc.stderr or proc.stdout)}")
        data = Path(tmp).read_bytes()
    finally:
        Path(tmp).unlink(missing_ok=True)
    fresh = target.exists() and target.stat().st_mtime >= script.stat().st_mtime
    if fresh and target.read_bytes() == data:
        return False
    return write_atomic(target, data, 0o644)


def prepare_spool(layout: Layout) -> None:
    """``spool/new`` and ``spool/tmp`` writable by the mail user only; ``cur`` root's.

    A spool in the data directory (the default) needs the mail user to pass through that
    directory: its group becomes the mail user's and it gets the group's search bit only
    (0710), so the mail user can reach ``learn/`` but list or read nothing else there.
    """
    user = pwd.getpwnam(layout.mail_user)
    group = grp.getgrgid(user.pw_gid).gr_gid
    if layout.data_dir in layout.spool.parents:
        layout.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chown(layout.data_dir, -1, group)
        os.chmod(layout.data_dir, 0o710)
    layout.spool.mkdir(parents=True, exist_ok=True)
    os.chown(layout.spool, 0, group)
    os.chmod(layout.spool, 0o750)
    for name, uid, gid in (("tmp", user.pw_uid, group), ("new", user.pw_uid, group),
                           ("cur", 0, 0)):
        sub = layout.spool / name
        sub.mkdir(exist_ok=True)
        os.chown(sub, uid, gid)
        os.chmod(sub, 0o700)


def enable(layout: Layout) -> Result:
    check_requirements(layout)
    _ensure_ours(layout.snippet)
    files = render_all(layout, plugin_settings(layout))
    changed = [str(p) for p, (text, mode) in files.items()
               if write_atomic(p, text.encode(), mode)]
    for script in SCRIPTS:
        if compile_script(layout, layout.sieve_dir / script):
            changed.append(str((layout.sieve_dir / script).with_suffix(".svbin")))
    prepare_spool(layout)
    reloaded, detail = reload(layout) if changed else (False, "unchanged")
    return Result(changed, reloaded, detail)


def purge(layout: Layout) -> Result:
    """Remove everything :func:`enable` wrote (queued learn reports included)."""
    removed: list[str] = []
    pipe_dir = layout.sieve_dir / "bin"
    if layout.snippet.exists():
        _ensure_ours(layout.snippet)
        for line in layout.snippet.read_text().splitlines():
            if (m := _PLUGIN_LINE.match(line)) and m.group(1) == "sieve_pipe_bin_dir":
                pipe_dir = Path(m.group(2))
        layout.snippet.unlink()
        removed.append(str(layout.snippet))
    targets = [pipe_dir / PIPE_PROGRAM]
    for script in SCRIPTS:
        targets += [layout.sieve_dir / script, (layout.sieve_dir / script).with_suffix(".svbin")]
    for path in targets:
        if path.exists():
            path.unlink()
            removed.append(str(path))
    for directory in (layout.sieve_dir / "bin", layout.sieve_dir):
        _rmdir_if_empty(directory)
    removed += remove_spool(layout.spool)
    reloaded, detail = reload(layout) if removed else (False, "nothing to remove")
    return Result(removed, reloaded, detail)


def remove_spool(spool: Path) -> list[str]:
    """Queued reports and the spool's own directories (nothing else in it is touched)."""
    removed = []
    for name in ("tmp", "new", "cur"):
        sub = spool / name
        if not sub.is_dir():
            continue
        for entry in os.scandir(sub):
            if entry.is_file(follow_symlinks=False) or entry.is_symlink():
                os.unlink(entry.path)
        _rmdir_if_empty(sub)
        removed.append(str(sub))
    _rmdir_if_empty(spool)
    return removed


def _rmdir_if_empty(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.rmdir()


def reload(layout: Layout) -> tuple[bool, str]:
    """Ask a running Dovecot to re-read its configuration."""
    proc = _run("doveadm", "-c", str(layout.config), "reload")
    if proc.returncode == 0:
        return True, "Dovecot reloaded"
    return False, "Dovecot not reloaded (not running?): " + _first_line(proc.stderr)


def installed(layout: Layout) -> bool:
    return layout.snippet.is_file() and all((layout.sieve_dir / s).with_suffix(".svbin")
                                            .is_file() for s in SCRIPTS)


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0][:200] if lines else "no output"
