"""Integration test harness: a fresh Kite instance per test.

The `kite` fixture gives an instance in its own temporary directory:

    kite.confdir, kite.queue_dir, kite.data_dir, kite.maildir_base, kite.log
    kite.port                 smtp inet port on 127.0.0.1 (kite.free_port() for more)
    kite.set(**params)        main.cf parameters (written at once; reload to apply)
    kite.master_cf(text)      replace master.cf (default: every service whose
                              daemon is built, smtpd on 127.0.0.1:kite.port)
    kite.start(), kite.stop(), kite.reload()
    kite.run(cmd, *args, input=None)   build/bin/<cmd> -c confdir (-C for sendmail)
    kite.wait_log(regex, timeout=10), kite.wait_for_files(path, n, timeout=10)
    kite.as_root_with_mail_owner()     (root only) master as root, daemons as
                              mail_owner `kite`, setgid_group `kitedrop`
    kite.smtp()               smtplib.SMTP connected to kite.port
    kite.maildir(user)        Maildir of user@sandbox.test
    kite.children(service)    live children of master [(pid, /proc info)]
    kite_factory()            more independent instances in one test

By default the whole instance runs as one unprivileged user: the invoking
user, or - when the tests run as root - the system user `kite` (created when
missing), so the default behaves the same everywhere.

Mail for any user at sandbox.test goes to the Maildir kite.maildir_base/USER/
(virtual_mailbox_maps is a pcre table mapping USER@sandbox.test to "USER/").
"""

import grp
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("KITE_BUILD", REPO / "build")).resolve()
LIBEXEC = BUILD / "libexec"
BIN = BUILD / "bin"
TEST_DAEMONS = BUILD / "tests" / "daemon"

MAIL_OWNER = "kite"
SETGID_GROUP = "kitedrop"

# The default services (conf/master.cf without the commented ones), with
# the inet address filled in per instance.
DEFAULT_UNIX_SERVICES = [
    # name      type   private unpriv chroot wakeup maxproc command
    ("pickup", "unix", "n", "-", "n", "60", "1", "pickup"),
    ("cleanup", "unix", "n", "-", "n", "-", "0", "cleanup"),
    ("qmgr", "unix", "n", "-", "n", "300", "1", "qmgr"),
    ("bounce", "unix", "-", "-", "n", "-", "0", "bounce"),
    ("defer", "unix", "-", "-", "n", "-", "0", "bounce"),
    ("trace", "unix", "-", "-", "n", "-", "0", "bounce"),
    ("smtp", "unix", "-", "-", "n", "-", "-", "smtp"),
    ("relay", "unix", "-", "-", "n", "-", "-", "smtp"),
    ("local", "unix", "-", "n", "n", "-", "-", "local"),
    ("virtual", "unix", "-", "n", "n", "-", "-", "local"),
    ("showq", "unix", "n", "-", "n", "-", "-", "showq"),
    ("anvil", "unix", "-", "-", "y", "-", "1", "anvil"),
]

SENDMAIL_NAMES = ("sendmail", "mailq", "newaliases")


def _ensure_system_user(name, group=None):
    """Create a system user (with its own group) when missing; root only."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", name],
            check=True, capture_output=True)
    if group:
        try:
            grp.getgrnam(group)
        except KeyError:
            subprocess.run(["groupadd", "--system", group], check=True, capture_output=True)


def wait_until(pred, timeout=20, what="condition", kite=None):
    """pred()'s first true value within timeout seconds; else fail, with the instance's log tail if given."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}" + (f"\n--- log ---\n{kite.log_tail()}" if kite else ""))


def free_port():
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_info(pid):
    """(ppid, state, uid, cmdline, root) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            status = f.read()
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    try:
        root = os.readlink(f"/proc/{pid}/root")
    except OSError:
        root = None
    return {
        "ppid": int(fields["PPid"].strip()),
        "state": fields["State"].strip()[0],
        "uid": int(fields["Uid"].split()[1]),      # effective uid
        "uids": [int(x) for x in fields["Uid"].split()],
        "gids": [int(x) for x in fields["Gid"].split()],
        "cmdline": cmdline,
        "root": root,
    }


def live_pids():
    """Every pid in /proc that is not a zombie."""
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            info = proc_info(int(name))
            if info and info["state"] != "Z":
                pids.append(int(name))
    return pids


# Instances that may be running, so that a killed test run (SIGTERM from a
# timeout, or Ctrl-C) leaves no Kite processes behind.
_live_instances = set()


def _stop_everything(signum, frame):
    for inst in list(_live_instances):
        try:
            inst.cleanup(quick=True)
            shutil.rmtree(inst.base, ignore_errors=True)
        except Exception:
            pass
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def pytest_configure(config):
    signal.signal(signal.SIGTERM, _stop_everything)


def pytest_unconfigure(config):
    for inst in list(_live_instances):
        inst.cleanup(quick=True)


class KiteInstance:
    """One Kite instance in a temporary directory (see the module docstring)."""

    def __init__(self, base):
        self.base = Path(base)
        self.confdir = self.base / "etc"
        self.queue_dir = self.base / "queue"
        self.data_dir = self.base / "data"
        self.maildir_base = self.base / "mail"
        self.log = self.base / "maillog"
        self.daemon_dir = self.base / "libexec"
        self.port = free_port()
        _live_instances.add(self)
        self.root_mode = False
        self.running = False
        self._master_cf = None
        for d in (self.confdir, self.maildir_base, self.daemon_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._link_daemons()
        if os.geteuid() == 0:
            _ensure_system_user(MAIL_OWNER)
            self.user = MAIL_OWNER
        else:
            self.user = pwd.getpwuid(os.geteuid()).pw_name
        pw = pwd.getpwnam(self.user)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        (self.confdir / "vmailbox.pcre").write_text(
            "/^([^@/.][^@/]*)@sandbox\\.test$/\t$1/\n")
        self.params = {
            "queue_directory": str(self.queue_dir),
            "data_directory": str(self.data_dir),
            "daemon_directory": str(self.daemon_dir),
            "command_directory": str(BIN),
            "mail_owner": self.user,
            "setgid_group": grp.getgrgid(self.gid).gr_name,
            "myhostname": "kite.test",
            "mydomain": "kite.test",
            "mydestination": "kite.test localhost",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "maillog_file": str(self.log),
            "virtual_mailbox_domains": "sandbox.test",
            "virtual_mailbox_base": str(self.maildir_base),
            "virtual_mailbox_maps": f"pcre:{self.confdir}/vmailbox.pcre",
            "alias_maps": "",
            "alias_database": "",
            # short retry times
            "queue_run_delay": "1s",
            "minimal_backoff_time": "2s",
            "maximal_backoff_time": "4s",
            "service_throttle_time": "2s",
            "master_stop_timeout": "10s",
            "import_environment": "TZ LANG=C ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS",
        }
        self._fix_ownership()
        self._write_main_cf()
        self._write_master_cf()

    # ---- configuration ---------------------------------------------------

    def _link_daemons(self):
        """daemon_directory: the build's daemons plus the test daemons."""
        for src_dir in (LIBEXEC, TEST_DAEMONS):
            if src_dir.is_dir():
                for f in src_dir.iterdir():
                    if f.is_file() and os.access(f, os.X_OK):
                        link = self.daemon_dir / f.name
                        if not link.exists():
                            link.symlink_to(f)

    def _fix_ownership(self):
        """Let the instance user own its tree (when tests run as root)."""
        if os.geteuid() != 0:
            return
        os.chmod(self.base, 0o755)
        for root, dirs, files in os.walk(self.base):
            for name in dirs + files:
                p = os.path.join(root, name)
                if p.startswith(str(self.queue_dir)) or p.startswith(str(self.data_dir)):
                    continue
                os.lchown(p, self.uid, self.gid)
        os.lchown(self.base, self.uid, self.gid)

    def _write_main_cf(self):
        text = "".join(f"{k} = {v}\n" for k, v in self.params.items())
        (self.confdir / "main.cf").write_text(text)

    def default_master_cf(self):
        """smtpd on 127.0.0.1:port plus every built unix service."""
        lines = []
        if (LIBEXEC / "smtpd").exists():
            lines.append(f"127.0.0.1:{self.port} inet n - n - - smtpd")
        for row in DEFAULT_UNIX_SERVICES:
            if (LIBEXEC / row[7]).exists():
                lines.append(" ".join(row))
        return "\n".join(lines) + "\n"

    def _write_master_cf(self):
        text = self._master_cf if self._master_cf is not None else self.default_master_cf()
        (self.confdir / "master.cf").write_text(text)

    def set(self, **params):
        """Set main.cf parameters (values converted with str())."""
        for k, v in params.items():
            self.params[k] = str(v)
        self._write_main_cf()

    def master_cf(self, text):
        """Replace master.cf with this text."""
        self._master_cf = text
        self._write_master_cf()

    def as_root_with_mail_owner(self):
        """Run master as root with daemons as mail_owner `kite` (root only)."""
        if os.geteuid() != 0:
            pytest.skip("needs root")
        _ensure_system_user(MAIL_OWNER, SETGID_GROUP)
        self.root_mode = True
        self.user = "root"
        self.uid, self.gid = 0, 0
        self.set(mail_owner=MAIL_OWNER, setgid_group=SETGID_GROUP)
        os.chmod(self.base, 0o755)

    # ---- running commands ----------------------------------------------

    def _user_kwargs(self, as_root=False):
        if os.geteuid() != 0 or self.root_mode or as_root:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def env(self):
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "KITE_CONFIG_DIR": str(self.confdir),
            "LANG": "C",
        }
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TZ"):
            if k in os.environ:
                env[k] = os.environ[k]
        return env

    def run(self, cmd, *args, input=None, timeout=60, as_root=False, check=False):
        """Run build/bin/<cmd> with -c confdir (-C for sendmail); CompletedProcess with str output."""
        flag = "-C" if cmd in SENDMAIL_NAMES else "-c"
        argv = [str(BIN / cmd), flag, str(self.confdir), *[str(a) for a in args]]
        if isinstance(input, str):
            input = input.encode()
        p = subprocess.run(argv, input=input, capture_output=True, timeout=timeout, env=self.env(),
                           cwd=str(self.base), **self._user_kwargs(as_root))
        res = subprocess.CompletedProcess(argv, p.returncode, p.stdout.decode(errors="replace"),
                                          p.stderr.decode(errors="replace"))
        if check and res.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed ({res.returncode}):\n{res.stderr}\n"
                                 f"--- log ---\n{self.log_tail()}")
        return res

    def kite(self, *args, check=False, timeout=60):
        return self.run("kite", *args, check=check, timeout=timeout)

    def start(self, check=True):
        """kite start; returns the CompletedProcess (asserts success unless check=False)."""
        self._write_master_cf()
        res = self.kite("start", check=check)
        if res.returncode == 0:
            self.running = True
        return res

    def stop(self, check=True):
        res = self.kite("stop", check=check)
        if res.returncode == 0:
            self.running = False
        return res

    def reload(self):
        """kite reload, then wait until master logged that it reloaded."""
        before = len(re.findall(r"master\[\d+\]: reload -- ", self.log_text()))
        self._write_master_cf()
        self.kite("reload", check=True)
        deadline = time.time() + 10
        while time.time() < deadline:
            if len(re.findall(r"master\[\d+\]: reload -- ", self.log_text())) > before:
                return
            time.sleep(0.05)
        raise AssertionError("master did not log the reload\n" + self.log_tail())

    # ---- observing ---------------------------------------------------------

    def log_text(self):
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines=40):
        return "\n".join(self.log_text().splitlines()[-lines:])

    def wait_log(self, regex, timeout=10, after=0):
        """Wait for a log line matching regex (from offset `after`); returns the match."""
        pat = re.compile(regex, re.M)
        deadline = time.time() + timeout
        while True:
            m = pat.search(self.log_text(), after)
            if m:
                return m
            if time.time() >= deadline:
                raise AssertionError(f"no log line matching {regex!r} within {timeout}s\n"
                                     f"--- log ---\n{self.log_tail()}")
            time.sleep(0.05)

    def wait_for_files(self, path, n, timeout=10):
        """Wait until at least n regular files exist under path; returns them (sorted)."""
        path = Path(path)
        deadline = time.time() + timeout
        while True:
            files = sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []
            if len(files) >= n:
                return files
            if time.time() >= deadline:
                raise AssertionError(f"{len(files)} files under {path}, wanted {n}\n"
                                     f"--- log ---\n{self.log_tail()}")
            time.sleep(0.05)

    def free_port(self):
        return free_port()

    def master_pid(self):
        """The running master's pid (from kite status), or None."""
        res = self.kite("status")
        m = re.search(r"PID: (\d+)", res.stdout)
        return int(m.group(1)) if res.returncode == 0 and m else None

    def children(self, service=None):
        """Live children of master as (pid, info), optionally of one service (-n NAME)."""
        mpid = self.master_pid()
        out = []
        if mpid is None:
            return out
        for pid in live_pids():
            info = proc_info(pid)
            if not info or info["ppid"] != mpid:
                continue
            if service is not None:
                argv = info["cmdline"]
                if "-n" not in argv or argv[argv.index("-n") + 1] != service:
                    continue
            out.append((pid, info))
        return out

    def instance_pids(self):
        """Every live process that belongs to this instance (its confdir on the command line)."""
        conf = str(self.confdir)
        pids = []
        for pid in live_pids():
            info = proc_info(pid)
            if info and conf in info["cmdline"]:
                pids.append(pid)
        return pids

    def smtp(self, port=None, timeout=30):
        """An smtplib.SMTP client connected to 127.0.0.1:port (default kite.port)."""
        import smtplib
        return smtplib.SMTP("127.0.0.1", port or self.port, timeout=timeout)

    def maildir(self, user):
        """The Maildir of USER@sandbox.test."""
        return self.maildir_base / user

    def connect(self, port=None, timeout=10):
        """A socket connected to 127.0.0.1:port (default kite.port)."""
        return socket.create_connection(("127.0.0.1", port or self.port), timeout=timeout)

    def cleanup(self, quick=False):
        """Stop the instance (quick: abort) and kill anything left of it."""
        _live_instances.discard(self)
        if self.master_pid():
            self.kite("abort" if quick else "stop", timeout=60)
        for pid in self.instance_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def kite():
    base = tempfile.mkdtemp(prefix="kite-test-")
    inst = KiteInstance(base)
    try:
        yield inst
    finally:
        inst.cleanup()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def kite_factory():
    """Several independent instances in one test: kite_factory() -> KiteInstance."""
    made = []

    def make():
        inst = KiteInstance(tempfile.mkdtemp(prefix="kite-test-"))
        made.append(inst)
        return inst

    try:
        yield make
    finally:
        for inst in made:
            inst.cleanup()
            shutil.rmtree(inst.base, ignore_errors=True)
