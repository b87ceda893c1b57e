"""A tiny authoritative DNS server on loopback for tests (UDP, stdlib only).

Answers MX, A, AAAA and PTR queries from a table: {"example.test": {"MX": [(10, "mx1.example.test")],
"A": ["127.0.0.2"]}, "2.0.0.127.in-addr.arpa": {"PTR": ["mail.example.test"]}}. Names not in the
table get NXDOMAIN; known names without the asked type get an empty answer (NODATA). An MX exchange
of "." is a null MX (RFC 7505). Per name, "delay": seconds holds the answer back (other queries are
answered meanwhile), "drop": True never answers, "rcode": n answers with that RCODE (2 = SERVFAIL).
`queries` lists (name, qtype) in arrival order; `query_times` the matching time.time() values.
"""

import socket
import struct
import threading
import time


def _encode_name(name):
    if name in (".", ""):
        return b"\0"
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def _decode_name(data, off):
    labels = []
    while True:
        n = data[off]
        off += 1
        if n == 0:
            break
        labels.append(data[off:off + n].decode())
        off += n
    return ".".join(labels).lower(), off


class DNSServer:
    def __init__(self, records):
        self.records = {k.lower().rstrip("."): v for k, v in records.items()}
        self.queries = []
        self.query_times = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self._t = threading.Thread(target=self._serve, daemon=True)
        self._t.start()

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                answer, delay = self._answer(data)
            except Exception:
                continue
            if answer is None:
                continue
            if delay:
                t = threading.Timer(delay, self._send, (answer, peer))
                t.daemon = True
                t.start()
            else:
                self._send(answer, peer)

    def _send(self, answer, peer):
        try:
            self.sock.sendto(answer, peer)
        except OSError:
            pass

    def _answer(self, q):
        qid, flags, qd, _, _, _ = struct.unpack(">HHHHHH", q[:12])
        name, off = _decode_name(q, 12)
        qtype, qclass = struct.unpack(">HH", q[off:off + 4])
        question = q[12:off + 4]
        self.queries.append((name, qtype))
        self.query_times.append(time.time())
        rec = self.records.get(name)
        answers = []
        rcode = 0
        if rec is not None and rec.get("drop"):
            return None, 0
        if rec is None:
            rcode = 3
        elif rec.get("rcode"):
            rcode = rec["rcode"]
        elif qtype == 15:
            for pref, host in rec.get("MX", []):
                rdata = struct.pack(">H", pref) + _encode_name(host)
                answers.append(rdata)
        elif qtype == 1:
            for a in rec.get("A", []):
                answers.append(socket.inet_aton(a))
        elif qtype == 28:
            for a in rec.get("AAAA", []):
                answers.append(socket.inet_pton(socket.AF_INET6, a))
        elif qtype == 12:
            for host in rec.get("PTR", []):
                answers.append(_encode_name(host))
        header = struct.pack(">HHHHHH", qid, 0x8400 | rcode, 1, len(answers), 0, 0)
        body = question
        for rdata in answers:
            body += b"\xc0\x0c" + struct.pack(">HHIH", qtype, 1, 60, len(rdata)) + rdata
        return header + body, (rec or {}).get("delay", 0)

    def stop(self):
        self._stop = True
        self._t.join(1)
        self.sock.close()
