"""A private Postfix instance and Postfix's smtp-sink, as real peers for tests.

The instance has its own configuration and queue under a temporary
directory, listens on a loopback port, delivers mail for its virtual
domain into one Maildir, and can relay everything else to a relayhost.
Needs root (Postfix drops to its own user) and Debian's postfix package.
"""

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time

POSTFIX = "/usr/sbin/postfix"
SMTP_SINK = "/usr/sbin/smtp-sink"


def available():
    return os.geteuid() == 0 and os.path.exists(POSTFIX) and os.path.exists("/etc/postfix/master.cf")


def _wait_port(port, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on 127.0.0.1:%d" % port)


class PrivatePostfix:
    def __init__(self, port, domain="postfix.test", relayhost=None):
        self.port = port
        self.domain = domain
        self.base = tempfile.mkdtemp(prefix="pfpeer-")
        os.chmod(self.base, 0o755)
        self.etc = os.path.join(self.base, "etc")
        self.maildir = os.path.join(self.base, "mail", "inbox")
        for d in ("etc", "queue", "data", "mail"):
            os.makedirs(os.path.join(self.base, d))
        shutil.chown(os.path.join(self.base, "data"), "postfix", "postfix")
        shutil.chown(os.path.join(self.base, "mail"), "nobody", "nogroup")
        nobody = pwd.getpwnam("nobody")
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write("""compatibility_level = 3.6
queue_directory = {b}/queue
data_directory = {b}/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mx.{d}
mydestination =
mynetworks = 127.0.0.0/8
virtual_mailbox_domains = {d}
virtual_mailbox_base = {b}/mail
virtual_mailbox_maps = static:inbox/
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
smtpd_relay_restrictions = permit_mynetworks, reject
maillog_file = {b}/maillog
maillog_file_prefixes = {b}
minimal_backoff_time = 1s
maximal_backoff_time = 2s
queue_run_delay = 1s
{relay}
""".format(b=self.base, d=domain, uid=nobody.pw_uid, gid=nobody.pw_gid,
                relay="relayhost = %s" % relayhost if relayhost else ""))
        with open("/etc/postfix/master.cf") as src, open(os.path.join(self.etc, "master.cf"), "w") as dst:
            for line in src:
                if re.match(r"^smtp\s+inet", line):
                    line = re.sub(r"^smtp(\s)", "127.0.0.1:%d\\1" % port, line)
                dst.write(line)

    def start(self):
        subprocess.run([POSTFIX, "-c", self.etc, "start"], check=True, capture_output=True)
        _wait_port(self.port)

    def stop(self):
        subprocess.run([POSTFIX, "-c", self.etc, "stop"], capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)

    def log(self):
        try:
            with open(os.path.join(self.base, "maillog")) as f:
                return f.read()
        except OSError:
            return ""

    def messages(self):
        d = os.path.join(self.maildir, "new")
        out = []
        for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            with open(os.path.join(d, name), "rb") as f:
                out.append(f.read())
        return out

    def wait_messages(self, n, timeout=30):
        end = time.time() + timeout
        while time.time() < end:
            m = self.messages()
            if len(m) >= n:
                return m
            time.sleep(0.1)
        raise AssertionError("postfix delivered %d of %d; log:\n%s" % (len(self.messages()), n, self.log()[-3000:]))


class SmtpSink:
    """Postfix's smtp-sink, dumping each message into a directory (-d)."""

    def __init__(self, port):
        self.port = port
        self.dir = tempfile.mkdtemp(prefix="smtpsink-")
        os.chmod(self.dir, 0o777)
        self.proc = subprocess.Popen([SMTP_SINK, "-u", "nobody", "-d", self.dir + "/%M.", "127.0.0.1:%d" % port,
                                      "100"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(port)

    def files(self):
        return sorted(os.listdir(self.dir))

    def wait_files(self, n, timeout=30):
        end = time.time() + timeout
        while time.time() < end:
            if len(self.files()) >= n:
                return self.files()
            time.sleep(0.1)
        raise AssertionError("smtp-sink got %d of %d messages" % (len(self.files()), n))

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
