#!/usr/bin/python3
"""Kite and Postfix side by side on one machine, in one run.

Each workload runs for both MTAs in turn, pairs in ABBA order (Kite
Postfix, Postfix Kite, ...) so that neither always runs right after the
other, with a private
instance of each: own configuration and queue under a temporary directory,
loopback ports only, default durability (both fsync every queue file before
answering 250). Load comes from Postfix's smtp-source; relayed mail goes to
Postfix's smtp-sink. Figures are medians [min-max] over the pairs, and the
Kite/Postfix ratio pair by pair.

Workloads: relay (to smtp-sink) and local (to a Maildir) send many messages
over a few reused connections (smtp-source -d); the connection-rate workload
opens one connection per message. A disk probe before and after gives the
rate at which this disk creates, fsyncs and renames files, so every message
rate can also be read as a fraction of what the disk allows.

Every run starts after a sync(2), and the runs' directories are removed
only at the end: a run should not pay for the writeback or the mass file
removal of the run before it (on ext4 without a journal, for one, freshly
freed inodes are skipped one by one by the next file creations for minutes).

Usage: bench/run.py [--quick | --tiny] [--pairs N] [--out DIR]
"""

import argparse
import datetime
import os
import platform
import pwd
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("KITE_BUILD", os.path.join(ROOT, "build"))


T0 = time.time()


def log(*a):
    print("bench: [%5.1fs]" % (time.time() - T0), *a, file=sys.stderr, flush=True)


def sh(*args, check=True, **kw):
    return subprocess.run(list(args), check=check, **kw)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def ensure_packages():
    """Postfix (reference MTA, smtp-source, smtp-sink) and gnuplot, from Debian."""
    need = [p for p, path in (("postfix", "/usr/sbin/smtp-source"), ("gnuplot-nox", "/usr/bin/gnuplot"))
            if not os.path.exists(path)]
    if not need:
        return
    if os.geteuid() != 0:
        sys.exit("bench: missing packages %s; run as root: apt-get install -y %s" % (need, " ".join(need)))
    # No system-wide Postfix configuration: nothing listens on port 25.
    subprocess.run(["debconf-set-selections"], input=b"postfix postfix/main_mailer_type select No configuration\n")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.run(["apt-get", "install", "-y", "-q"] + need, env=env).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env)
        sh("apt-get", "install", "-y", "-q", *need, env=env)


# ---- resource accounting: cgroup v2, cgroup v1, or /proc ---------------------

class Cgroup:
    """All processes of one MTA instance, for CPU seconds and peak memory."""

    def __init__(self, name):
        self.name = name
        self.mode = None
        self.paths = {}
        v2 = "/sys/fs/cgroup/cgroup.controllers"
        try:
            if os.path.exists(v2):
                p = "/sys/fs/cgroup/" + name
                os.makedirs(p, exist_ok=True)
                self.paths = {"procs": p + "/cgroup.procs", "cpu": p + "/cpu.stat",
                              "peak": p + "/memory.peak", "cur": p + "/memory.current", "dir": [p]}
                self.mode = "cgroup v2"
            elif os.path.isdir("/sys/fs/cgroup/cpuacct") and os.path.isdir("/sys/fs/cgroup/memory"):
                c = "/sys/fs/cgroup/cpuacct/" + name
                m = "/sys/fs/cgroup/memory/" + name
                os.makedirs(c, exist_ok=True)
                os.makedirs(m, exist_ok=True)
                self.paths = {"procs": [c + "/cgroup.procs", m + "/cgroup.procs"], "cpu": c + "/cpuacct.usage",
                              "peak": m + "/memory.max_usage_in_bytes", "cur": m + "/memory.usage_in_bytes",
                              "reset": m + "/memory.max_usage_in_bytes", "dir": [c, m]}
                self.mode = "cgroup v1"
        except OSError:
            self.mode = None
        if self.mode is None:
            self.mode = "/proc"

    def wrap(self, argv):
        """A command line that joins the cgroup, then runs argv."""
        if self.mode == "/proc":
            return argv
        procs = self.paths["procs"]
        if isinstance(procs, str):
            procs = [procs]
        joins = "; ".join("echo $$ > %s" % p for p in procs)
        return ["/bin/sh", "-c", joins + '; exec "$@"', "sh"] + argv

    def pids(self):
        procs = self.paths.get("procs")
        if isinstance(procs, list):
            procs = procs[0]
        if not procs:
            return []
        with open(procs) as f:
            return [int(x) for x in f.read().split()]

    def cpu_seconds(self):
        if self.mode == "cgroup v2":
            with open(self.paths["cpu"]) as f:
                for line in f:
                    k, v = line.split()
                    if k == "usage_usec":
                        return int(v) / 1e6
        if self.mode == "cgroup v1":
            with open(self.paths["cpu"]) as f:
                return int(f.read()) / 1e9
        return None

    def reset_peak(self):
        if self.mode == "cgroup v1":
            try:
                with open(self.paths["reset"], "w") as f:
                    f.write("0")
            except OSError:
                pass

    def mem_peak(self):
        try:
            with open(self.paths["peak"]) as f:
                return int(f.read())
        except (OSError, KeyError):
            return None

    def mem_current(self):
        try:
            with open(self.paths["cur"]) as f:
                return int(f.read())
        except (OSError, KeyError):
            return None

    def remove(self):
        for d in self.paths.get("dir", []):
            try:
                os.rmdir(d)
            except OSError:
                pass


# ---- the two MTAs -----------------------------------------------------------

class MTA:
    name = "?"

    def __init__(self, base, port, sink_port, workload):
        self.base = base
        self.port = port
        self.sink_port = sink_port
        self.workload = workload
        self.maildir = os.path.join(base, "mail", "bench") + "/"
        self.cg = Cgroup("kitebench-%s-%d" % (self.name, os.getpid()))

    def delivered_local(self):
        d = os.path.join(self.maildir, "new")
        try:
            return len(os.listdir(d))
        except OSError:
            return 0


class Postfix(MTA):
    name = "postfix"

    def setup(self):
        etc = os.path.join(self.base, "etc")
        os.makedirs(etc)
        os.makedirs(os.path.join(self.base, "queue"))
        os.makedirs(os.path.join(self.base, "data"))
        shutil.chown(os.path.join(self.base, "data"), "postfix", "postfix")
        os.makedirs(os.path.join(self.base, "mail"))
        shutil.chown(os.path.join(self.base, "mail"), "nobody", "nogroup")
        relay = "relayhost = [127.0.0.1]:%d\n" % self.sink_port
        with open(os.path.join(etc, "main.cf"), "w") as f:
            f.write("""compatibility_level = 3.6
queue_directory = {b}/queue
data_directory = {b}/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = postfix.bench.test
mydestination =
mynetworks = 127.0.0.0/8
{relay}virtual_mailbox_domains = bench.test
virtual_mailbox_base = {b}/mail
virtual_mailbox_maps = static:bench/
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
smtpd_relay_restrictions = permit_mynetworks, reject
maillog_file = {b}/maillog
maillog_file_prefixes = {b}
default_process_limit = 100
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
""".format(b=self.base, relay=relay if self.workload == "relay" else "",
                uid=pwd.getpwnam("nobody").pw_uid, gid=pwd.getpwnam("nobody").pw_gid))
        with open("/etc/postfix/master.cf") as src, open(os.path.join(etc, "master.cf"), "w") as dst:
            for line in src:
                if re.match(r"^smtp\s+inet", line):
                    line = re.sub(r"^smtp(\s)", "127.0.0.1:%d\\1" % self.port, line)
                dst.write(line)
        self.etc = etc

    def start(self):
        argv = ["/usr/sbin/postfix", "-c", self.etc, "start"]
        subprocess.run(self.cg.wrap(argv), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def stop(self):
        subprocess.run(["/usr/sbin/postfix", "-c", self.etc, "stop"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        wait_gone(self.cg)


class Kite(MTA):
    name = "kite"

    def setup(self):
        etc = os.path.join(self.base, "etc")
        os.makedirs(etc)
        os.makedirs(os.path.join(self.base, "mail"))
        relay = "relayhost = [127.0.0.1]:%d\n" % self.sink_port
        owner = "kite" if os.geteuid() == 0 and user_exists("kite") else pwd.getpwuid(os.geteuid()).pw_name
        if os.geteuid() == 0:
            shutil.chown(os.path.join(self.base, "mail"), "nobody", "nogroup")
        with open(os.path.join(etc, "main.cf"), "w") as f:
            f.write("""queue_directory = {b}/queue
data_directory = {b}/data
daemon_directory = {build}/libexec
command_directory = {build}/bin
mail_owner = {owner}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = kite.bench.test
mydestination =
mynetworks = 127.0.0.0/8
{relay}virtual_mailbox_domains = bench.test
virtual_mailbox_base = {b}/mail
virtual_mailbox_maps = static:bench/
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
smtpd_relay_restrictions = permit_mynetworks, reject
maillog_file = {b}/maillog
smtpd_client_connection_count_limit = 0
""".format(b=self.base, build=BUILD, owner=owner, relay=relay if self.workload == "relay" else "",
                uid=pwd.getpwnam("nobody").pw_uid if os.geteuid() == 0 else os.getuid(),
                gid=pwd.getpwnam("nobody").pw_gid if os.geteuid() == 0 else os.getgid()))
        with open(os.path.join(ROOT, "conf", "master.cf")) as src, open(os.path.join(etc, "master.cf"), "w") as dst:
            for line in src:
                if re.match(r"^smtp\s+inet", line):
                    line = re.sub(r"^smtp(\s)", "127.0.0.1:%d\\1" % self.port, line)
                dst.write(line)
        self.etc = etc

    def start(self):
        argv = [os.path.join(BUILD, "bin", "kite"), "-c", self.etc, "start"]
        subprocess.run(self.cg.wrap(argv), check=True, stdout=subprocess.DEVNULL)
        wait_port(self.port)

    def stop(self):
        subprocess.run([os.path.join(BUILD, "bin", "kite"), "-c", self.etc, "stop"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        wait_gone(self.cg)


def user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def wait_port(port, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on port %d" % port)


def wait_gone(cg, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        try:
            if not cg.pids():
                return
        except OSError:
            return
        time.sleep(0.1)


# ---- load and sink ------------------------------------------------------------

class SmtpSink:
    """Postfix's smtp-sink, counting messages on its -c output."""

    def __init__(self, port):
        self.port = port
        argv = ["/usr/sbin/smtp-sink", "-c", "-u", "nobody", "127.0.0.1:%d" % port, "1000"]
        if os.geteuid() != 0:
            argv = ["/usr/sbin/smtp-sink", "-c", "127.0.0.1:%d" % port, "1000"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.count = 0
        self.buf = b""
        wait_port(port)

    def poll(self):
        try:
            data = self.proc.stdout.read()
        except (BlockingIOError, TypeError):
            data = None
        if data:
            self.buf = (self.buf + data)[-4096:]
            nums = re.findall(rb"(\d+)", self.buf)
            if nums:
                self.count = max(self.count, int(nums[-1]))
        return self.count

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def smtp_source(port, sessions, messages, size, to, reuse=True):
    """Send messages over sessions parallel connections; with reuse, each
    connection carries many messages (-d), else one message per connection."""
    argv = ["/usr/sbin/smtp-source"] + (["-d"] if reuse else []) + [
        "-s", str(sessions), "-m", str(messages), "-l", str(size),
        "-f", "sender@source.test", "-t", to, "127.0.0.1:%d" % port]
    t0 = time.time()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.time() - t0, " ".join(argv)


def run_once(cls, workload, messages, size, sessions, tmp):
    """One run of one MTA; returns a dict of measurements. Its directory stays until the end (see above)."""
    os.sync()
    base = tempfile.mkdtemp(prefix=cls.name + "-", dir=tmp)
    os.chmod(base, 0o755)
    port, sink_port = free_port(), free_port()
    mta = cls(base, port, sink_port, workload)
    mta.setup()
    sink = SmtpSink(sink_port) if workload == "relay" else None
    res = {}
    try:
        mta.start()
        mta.cg.reset_peak()
        cpu0 = mta.cg.cpu_seconds()
        to = "rcpt@remote.test" if workload == "relay" else "bench@bench.test"
        if workload == "connrate":
            # One message per connection, twice as many parallel clients.
            recv, cmd = smtp_source(port, 2 * sessions, messages, size, "bench@bench.test", reuse=False)
        else:
            recv, cmd = smtp_source(port, sessions, messages, size, to)
        t_start = time.time() - recv
        end = time.time() + 300
        while time.time() < end:
            got = sink.poll() if sink else mta.delivered_local()
            if got >= messages:
                break
            time.sleep(0.02)
        total = time.time() - t_start
        got = sink.poll() if sink else mta.delivered_local()
        cpu1 = mta.cg.cpu_seconds()
        res = {"recv_rate": messages / recv, "e2e_rate": got / total if got >= messages else None,
               "delivered": got, "cpu_per_1000": (cpu1 - cpu0) * 1000.0 / messages if cpu0 is not None else None,
               "mem_peak": mta.cg.mem_peak(), "command": cmd}
    finally:
        t_stop = time.time()
        mta.stop()
        if sink:
            sink.stop()
        mta.cg.remove()
        log("  %s: %d delivered, load %.1fs, all done %.1fs, stop %.1fs" % (
            cls.name, res.get("delivered", 0), recv if res else 0, total if res else 0, time.time() - t_stop))
    return res


def idle_sessions(cls, n, tmp):
    """Memory of n concurrent idle SMTP sessions (greeting read, then idle)."""
    base = tempfile.mkdtemp(prefix=cls.name + "-idle-", dir=tmp)
    os.chmod(base, 0o755)
    port = free_port()
    mta = cls(base, port, free_port(), "local")
    mta.setup()
    with open(os.path.join(mta.etc, "main.cf"), "a") as f:
        f.write("default_process_limit = %d\nsmtpd_timeout = 300s\n" % (n + 50))
    socks = []
    try:
        mta.start()
        time.sleep(0.5)
        before = mta.cg.mem_current()
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            socks.append(s)
        for s in socks:
            s.recv(512)
        time.sleep(1.0)
        after = mta.cg.mem_current()
        return {"mem_total": after, "mem_added": (after - before) if after and before else None}
    finally:
        for s in socks:
            s.close()
        mta.stop()
        mta.cg.remove()
        shutil.rmtree(base, ignore_errors=True)


def disk_probe(tmp, seconds):
    """Create, write, fsync and rename small files: the disk's durable-write rate."""
    d = tempfile.mkdtemp(prefix="fsync-", dir=tmp)
    n = 0
    end = time.time() + seconds
    dfd = os.open(d, os.O_RDONLY)
    while time.time() < end:
        p = os.path.join(d, "t%d" % n)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, b"x" * 2048)
        os.fsync(fd)
        os.close(fd)
        os.rename(p, os.path.join(d, "f%d" % n))
        os.fsync(dfd)
        n += 1
    os.close(dfd)
    shutil.rmtree(d, ignore_errors=True)
    return n / seconds


def summary(values):
    vals = [v for v in values if v is not None]
    if not vals:
        return "n/a"
    return "%.4g [%.4g-%.4g]" % (statistics.median(vals), min(vals), max(vals))


def ratio_summary(ks, ps, invert=False):
    rs = [k / p for k, p in zip(ks, ps) if k is not None and p]
    if not rs:
        return "n/a", None
    return "%.2f [%.2f-%.2f]" % (statistics.median(rs), min(rs), max(rs)), statistics.median(rs)


def abba(i):
    """The order of pair i: Kite first in even pairs, Postfix first in odd ones."""
    return (Kite, Postfix) if i % 2 == 0 else (Postfix, Kite)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--tiny", action="store_true", help="smallest counts, to prove the benchmark runs")
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    args = ap.parse_args()
    ensure_packages()
    if args.tiny:
        counts = dict(msgs=20, sessions=2, pairs=1, idle=20, probe=1, sizes=[1024])
    elif args.quick:
        counts = dict(msgs=300, sessions=5, pairs=max(1, min(args.pairs, 3)), idle=100, probe=2, sizes=[1024])
    else:
        counts = dict(msgs=2000, sessions=10, pairs=args.pairs, idle=500, probe=5, sizes=[1024, 51200])
    tmp = tempfile.mkdtemp(prefix="kitebench-")
    os.chmod(tmp, 0o755)
    rows = []
    try:
        probes = [disk_probe(tmp, counts["probe"])]
        log("disk: %.0f create+fsync+rename per second" % probes[0])
        workloads = [("relay", s) for s in counts["sizes"]] + [("local", 1024)]
        commands = []
        for workload, size in workloads:
            results = {"kite": [], "postfix": []}
            for i in range(counts["pairs"]):
                for cls in abba(i):
                    log("%s %s %d bytes, pair %d" % (cls.name, workload, size, i + 1))
                    r = run_once(cls, workload, counts["msgs"], size, counts["sessions"], tmp)
                    results[cls.name].append(r)
                    commands.append(r["command"])
            rows.append((workload, size, results))
        # Connection rate: one message per session, many sessions.
        results = {"kite": [], "postfix": []}
        for i in range(counts["pairs"]):
            for cls in abba(i):
                log("%s connection rate, pair %d" % (cls.name, i + 1))
                results[cls.name].append(run_once(cls, "connrate", counts["msgs"] // 2, 512, counts["sessions"], tmp))
        rows.append(("connrate", 512, results))
        idle = {cls.name: idle_sessions(cls, counts["idle"], tmp) for cls in (Kite, Postfix)}
        # The disk is shared: probe again at the end, and read rates against both.
        probes.append(disk_probe(tmp, counts["probe"]))
        log("disk: %.0f create+fsync+rename per second" % probes[1])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    write_report(args, counts, probes, rows, idle, commands)


def disk_share(values, probe):
    """The median rate as a fraction of the disk probe's rate."""
    vals = [v for v in values if v is not None]
    if not vals or not probe:
        return "n/a"
    return "%.2f" % (statistics.median(vals) / probe)


def write_report(args, counts, probes, rows, idle, commands):
    os.makedirs(args.out, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H%M%S")
    md = os.path.join(args.out, stamp + ".md")
    png = os.path.join(args.out, stamp + ".png")
    acct = Cgroup("kitebench-probe-%d" % os.getpid())
    acct.remove()
    lines = ["# Kite vs Postfix, %s" % stamp, "",
             "Machine: %s, %s, %d CPUs, Python %s; Postfix %s." % (
                 platform.node(), platform.platform(), os.cpu_count(), platform.python_version(),
                 subprocess.run(["/usr/sbin/postconf", "-d", "-h", "mail_version"], capture_output=True,
                                text=True).stdout.strip() or "?"),
             "Accounting: %s. Durability: both MTAs fsync each queue file before replying 250, and each "
             "Maildir file before reporting it delivered. Kite also syncs the directory entries (incoming/ "
             "after the rename, the Maildir's new/); the recipients' done marks are made durable by one syncfs "
             "per batch of finished messages, run beside qmgr's event loop, before their queue files are removed: "
             "4 syncs per locally delivered message and 2 per relayed one, plus one per batch; Postfix makes 2 "
             "and 1. Kite writes new mail "
             "into finished queue files it keeps (recycle/, queue_recycle_limit = 64, the default)." % acct.mode,
             "Disk limit: %.0f create+write+fsync+rename+directory fsync per second (a probe; %.0f at the "
             "start, %.0f at the end). The last column gives each median rate as a fraction of it: "
             "Kite's, then Postfix's." % (statistics.median(probes), probes[0], probes[-1]),
             "Counts: %d messages per run, %d sessions, %d pair(s) in ABBA order (Kite first, then Postfix "
             "first, ...). Each run starts after a sync; run directories are removed at the end." % (
                 counts["msgs"], counts["sessions"], counts["pairs"]),
             "", "| workload | figure | Kite | Postfix | Kite/Postfix | of disk probe |", "|---|---|---|---|---|---|"]
    probe = statistics.median(probes)
    chart = []
    for workload, size, res in rows:
        k, p = res["kite"], res["postfix"]
        label = "%s %dB" % (workload, size)
        for key, title in (("e2e_rate", "end-to-end msg/s"), ("recv_rate", "receive msg/s"),
                           ("cpu_per_1000", "CPU s per 1000 msgs"), ("mem_peak", "peak memory bytes")):
            kv = [r.get(key) for r in k]
            pv = [r.get(key) for r in p]
            rtext, rmed = ratio_summary(kv, pv)
            share = "%s / %s" % (disk_share(kv, probe), disk_share(pv, probe)) if key.endswith("rate") else ""
            lines.append("| %s | %s | %s | %s | %s | %s |" % (label, title, summary(kv), summary(pv), rtext, share))
            if rmed is not None:
                chart.append(("%s %s" % (label, title.split()[0]), rmed))
    kt, pt = idle["kite"].get("mem_total"), idle["postfix"].get("mem_total")
    lines.append("| %d idle sessions | memory bytes (all processes) | %s | %s | %s | |" % (
        counts["idle"], kt, pt, "%.2f" % (kt / pt) if kt and pt else "n/a"))
    if kt and pt:
        chart.append(("idle sessions memory", kt / pt))
    lines += ["", "Ratios above 1 mean Kite is higher (better for rates, worse for CPU and memory).", "",
              "Commands:", ""] + ["    " + c for c in sorted(set(commands))]
    with open(md, "w") as f:
        f.write("\n".join(lines) + "\n")
    if chart and shutil.which("gnuplot"):
        dat = png + ".dat"
        with open(dat, "w") as f:
            for i, (name, r) in enumerate(chart):
                f.write('%d "%s" %.4f\n' % (i, name, r))
        script = ('set terminal png size 1100,560; set output "%s"; set style fill solid; set boxwidth 0.6; set rmargin 18; set bmargin 9;'
                  'set ylabel "Kite/Postfix"; set xtics rotate by -30; set yrange [0:*];'
                  'plot "%s" using 1:3:xtic(2) with boxes notitle, 1 notitle' % (png, dat))
        subprocess.run(["gnuplot", "-e", script], check=False)
        os.unlink(dat)
    print("\n".join(lines))
    print("\nreport: %s" % md)


if __name__ == "__main__":
    main()
