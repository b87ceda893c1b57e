"""A tiny authoritative DNS server on loopback for tests (UDP, stdlib only).

Answers MX and A queries from a table: {"example.test": {"MX": [(10, "mx1.example.test")],
"A": ["127.0.0.2"]}}. Names not in the table get NXDOMAIN; known names
without the asked type get an empty answer (NODATA). An MX exchange of "."
is a null MX (RFC 7505).
"""

import socket
import struct
import threading


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
                self.sock.sendto(self._answer(data), peer)
            except Exception:
                pass

    def _answer(self, q):
        qid, flags, qd, _, _, _ = struct.unpack(">HHHHHH", q[:12])
        name, off = _decode_name(q, 12)
        qtype, qclass = struct.unpack(">HH", q[off:off + 4])
        question = q[12:off + 4]
        self.queries.append((name, qtype))
        rec = self.records.get(name)
        answers = []
        rcode = 0
        if rec is None:
            rcode = 3
        elif qtype == 15:
            for pref, host in rec.get("MX", []):
                rdata = struct.pack(">H", pref) + _encode_name(host)
                answers.append(rdata)
        elif qtype == 1:
            for a in rec.get("A", []):
                answers.append(socket.inet_aton(a))
        header = struct.pack(">HHHHHH", qid, 0x8400 | rcode, 1, len(answers), 0, 0)
        body = question
        for rdata in answers:
            body += b"\xc0\x0c" + struct.pack(">HHIH", qtype, 1, 60, len(rdata)) + rdata
        return header + body

    def stop(self):
        self._stop = True
        self._t.join(1)
        self.sock.close()
