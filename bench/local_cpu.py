#!/usr/bin/python3
"""Local delivery cost: CPU seconds and system calls of Kite's local agent.

A private Kite instance (loopback only) receives N messages from Postfix's
smtp-source; all of them are delivered by local. The figure that matters on
a shared machine is CPU, not wall-clock: the user+system time of every
local process plus the delivery children it reaped (utime, stime, cutime,
cstime from /proc), per 1000 messages. The whole instance's CPU comes from
a cgroup v1 cpuacct group when there is one.

Workloads:
  virtual  virtual mailbox Maildir (virtual_uid_maps static: nobody when root)
  home     a login user's $HOME/Maildir/ (home_mailbox = Maildir/)
  mbox     a login user's mbox in mail_spool_directory
"home" and "mbox" need root (a throwaway user is created and removed).

--strace runs one local process (maxproc 1) under strace -f -c and prints
the system call summary for the N messages (--trace: the full trace);
--perf records it with perf and prints where the CPU went.
KITE_BUILD=DIR measures another build (e.g. a copy of main's).

Usage: bench/local_cpu.py [--messages N] [--sessions S] [--size BYTES] [--runs R]
                          [--workload virtual|home|mbox] [--strace [--trace] | --perf]
"""

import argparse
import os
import pwd
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from run import free_port, wait_port  # bench/run.py, beside this file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("KITE_BUILD", os.path.join(ROOT, "build"))
HZ = os.sysconf("SC_CLK_TCK")
BENCH_USER = "ktbench"


def proc_cpu(pid):
    """utime+stime+cutime+cstime of a process in seconds, or None when gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # fields[0] is state (field 3); utime is field 14
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / HZ


def local_pids(cg):
    """The instance's local processes (members of its cgroup named "local")."""
    out = []
    for d in cg.pids():
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        comm = st[st.index("(") + 1:st.rindex(")")]
        ppid = st.rsplit(")", 1)[1].split()[1]
        try:
            with open("/proc/%s/stat" % ppid) as f:
                pst = f.read()
        except OSError:
            continue
        # A delivery child (a fork of local) is counted in its parent's cutime/cstime.
        if comm == "local" and pst[pst.index("(") + 1:pst.rindex(")")] != "local":
            out.append(int(d))
    return out


class Cpuacct:
    """A cgroup v1 cpuacct group for the whole instance (None figures without one)."""

    def __init__(self, name):
        self.path = "/sys/fs/cgroup/cpuacct/" + name
        try:
            os.makedirs(self.path, exist_ok=True)
        except OSError:
            self.path = None

    def wrap(self, argv):
        if not self.path:
            return argv
        return ["/bin/sh", "-c", 'echo $$ > %s/cgroup.procs; exec "$@"' % self.path, "sh"] + argv

    def pids(self):
        with open(self.path + "/cgroup.procs") as f:
            return f.read().split()

    def cpu(self):
        if not self.path:
            return None
        with open(self.path + "/cpuacct.usage") as f:
            return int(f.read()) / 1e9

    def remove(self):
        if self.path:
            try:
                os.rmdir(self.path)
            except OSError:
                pass


def make_user(base):
    home = os.path.join(base, "home", BENCH_USER)
    os.makedirs(os.path.dirname(home))
    os.chmod(os.path.dirname(home), 0o755)
    subprocess.run(["userdel", BENCH_USER], capture_output=True)
    subprocess.run(["useradd", "--no-create-home", "--home-dir", home, "--shell", "/bin/sh", BENCH_USER],
                   check=True, capture_output=True)
    os.mkdir(home, 0o700)
    pw = pwd.getpwnam(BENCH_USER)
    os.chown(home, pw.pw_uid, pw.pw_gid)
    return pw


def setup(base, port, workload, maxproc):
    etc = os.path.join(base, "etc")
    os.makedirs(etc)
    os.makedirs(os.path.join(base, "mail"))
    root = os.geteuid() == 0
    owner = "kite" if root else pwd.getpwuid(os.geteuid()).pw_name
    if root:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "kite"],
                       capture_output=True)
        shutil.chown(os.path.join(base, "mail"), "nobody", "nogroup")
    extra, to = "", "bench@bench.test"
    if workload in ("home", "mbox"):
        if not root:
            sys.exit("local_cpu: workload %s needs root" % workload)
        pw = make_user(base)
        to = "%s@kite.bench.test" % pw.pw_name
        if workload == "home":
            extra = "home_mailbox = Maildir/\n"
        else:
            spool = os.path.join(base, "spool")
            os.mkdir(spool)
            os.chmod(spool, 0o1777)
            extra = "mail_spool_directory = %s\n" % spool
    uid = pwd.getpwnam("nobody").pw_uid if root else os.getuid()
    gid = pwd.getpwnam("nobody").pw_gid if root else os.getgid()
    with open(os.path.join(etc, "main.cf"), "w") as f:
        f.write("""queue_directory = {b}/queue
data_directory = {b}/data
daemon_directory = {build}/libexec
command_directory = {build}/bin
mail_owner = {owner}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = kite.bench.test
mydestination = kite.bench.test
alias_maps =
alias_database =
mynetworks = 127.0.0.0/8
virtual_mailbox_domains = bench.test
virtual_mailbox_base = {b}/mail
virtual_mailbox_maps = static:bench/
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
smtpd_relay_restrictions = permit_mynetworks, reject
maillog_file = {b}/maillog
smtpd_client_connection_count_limit = 0
{extra}""".format(b=base, build=BUILD, owner=owner, uid=uid, gid=gid, extra=extra))
    with open(os.path.join(ROOT, "conf", "master.cf")) as src, open(os.path.join(etc, "master.cf"), "w") as dst:
        for line in src:
            if line.startswith("smtp ") and " inet " in line:
                line = "127.0.0.1:%d" % port + line[4:]
            if line.split()[:1] in (["local"], ["virtual"]):
                cols = line.split()
                cols[6] = str(maxproc) if maxproc else cols[6]
                line = " ".join(cols) + " -o max_use=1000000 -o max_idle=600s\n"
            dst.write(line)
    return etc, to


def count_delivered(base, workload):
    if workload == "virtual":
        d = os.path.join(base, "mail", "bench", "new")
    elif workload == "home":
        d = os.path.join(base, "home", BENCH_USER, "Maildir", "new")
    else:
        try:
            with open(os.path.join(base, "spool", BENCH_USER), "rb") as f:
                return sum(1 for line in f if line.startswith(b"From sender@"))
        except OSError:
            return 0
    try:
        return len(os.listdir(d))
    except OSError:
        return 0


def run(args, workload, tmp):
    base = tempfile.mkdtemp(prefix="localcpu-", dir=tmp)
    os.chmod(base, 0o755)
    port = free_port()
    etc, to = setup(base, port, workload, 1 if args.strace or args.perf else 0)
    cg = Cpuacct("kite-localcpu-%d" % os.getpid())
    kite = os.path.join(BUILD, "bin", "kite")
    strace = None
    res = {}
    try:
        subprocess.run(cg.wrap([kite, "-c", etc, "start"]), check=True, stdout=subprocess.DEVNULL)
        wait_port(port)
        src = ["/usr/sbin/smtp-source", "-f", "sender@source.test", "-t", to, "-l", str(args.size)]
        # One message first so local is running (and warm) when we start counting.
        subprocess.run(src + ["-m", "1", "127.0.0.1:%d" % port], check=True, stdout=subprocess.DEVNULL)
        end = time.time() + 30
        while count_delivered(base, workload) < 1 and time.time() < end:
            time.sleep(0.05)
        pids = local_pids(cg)
        if args.strace:
            out = os.path.join(base, "strace.txt")
            opts = ["-f", "-c"] if not args.trace else ["-f", "-tt", "-s", "80"]
            strace = subprocess.Popen(["strace"] + opts + ["-o", out, "-p", str(pids[0])],
                                      stderr=subprocess.DEVNULL)
            time.sleep(1.0)
        elif args.perf:
            out = os.path.join(base, "perf.data")
            strace = subprocess.Popen(["perf", "record", "-q", "-g", "-o", out, "-p", ",".join(map(str, pids))],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
        base_cpu = {p: proc_cpu(p) for p in pids}
        total0 = cg.cpu()
        t0 = time.time()
        subprocess.run(src + ["-s", str(args.sessions), "-m", str(args.messages), "127.0.0.1:%d" % port],
                       check=True, stdout=subprocess.DEVNULL)
        last = {}
        end = time.time() + 600
        while time.time() < end:
            for p in local_pids(cg):
                c = proc_cpu(p)
                if c is not None:
                    last[p] = c
            if count_delivered(base, workload) >= args.messages + 1:
                break
            time.sleep(0.1)
        wall = time.time() - t0
        for p in local_pids(cg):
            c = proc_cpu(p)
            if c is not None:
                last[p] = c
        total1 = cg.cpu()
        got = count_delivered(base, workload) - 1
        local = sum(c - (base_cpu.get(p) or 0) for p, c in last.items())
        res = {"delivered": got, "wall": wall, "local_cpu_per_1000": local * 1000 / args.messages,
               "total_cpu_per_1000": (total1 - total0) * 1000 / args.messages if total0 is not None else None,
               "local_procs": len(last)}
        if strace:
            strace.send_signal(signal.SIGINT)
            strace.wait()
            if args.perf:
                rep = ["perf", "report", "-i", out, "--stdio", "--no-children", "-g", "none"]
                res["strace"] = (subprocess.run(rep + ["--sort", "dso"], capture_output=True, text=True).stdout +
                                 subprocess.run(rep + ["--sort", "dso,sym", "--percent-limit", "0.4"],
                                                capture_output=True, text=True).stdout)
            else:
                with open(out) as f:
                    res["strace"] = f.read()
    finally:
        if strace and strace.poll() is None:
            strace.kill()
        subprocess.run([kite, "-c", etc, "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.time() + 20
        while time.time() < end and cg.path and cg.pids():
            time.sleep(0.1)
        cg.remove()
        if workload in ("home", "mbox"):
            subprocess.run(["userdel", BENCH_USER], capture_output=True)
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--sessions", type=int, default=5)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workload", default="virtual", choices=("virtual", "home", "mbox"))
    ap.add_argument("--strace", action="store_true")
    ap.add_argument("--perf", action="store_true", help="perf record the local processes; print the top symbols")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--trace", action="store_true", help="with --strace: the full trace, not the summary")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="kitelocal-")
    os.chmod(tmp, 0o755)
    results = []
    try:
        for i in range(1 if args.strace or args.perf else args.runs):
            r = run(args, args.workload, tmp)
            results.append(r)
            print("run %d: delivered %d in %.1fs (%.0f msg/s), local CPU %.2fs/1000, instance CPU %s/1000, "
                  "%d local processes" % (i + 1, r["delivered"], r["wall"], r["delivered"] / r["wall"],
                                          r["local_cpu_per_1000"],
                                          "%.2fs" % r["total_cpu_per_1000"] if r["total_cpu_per_1000"] else "n/a",
                                          r["local_procs"]), flush=True)
            if "strace" in r:
                print(r["strace"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if len(results) > 1:
        med = statistics.median
        print("median: local CPU %.2fs/1000, instance CPU %s/1000, %.0f msg/s" % (
            med(r["local_cpu_per_1000"] for r in results),
            "%.2fs" % med(r["total_cpu_per_1000"] for r in results) if results[0]["total_cpu_per_1000"] else "n/a",
            med(r["delivered"] / r["wall"] for r in results)))


if __name__ == "__main__":
    main()
