"""A recording SMTP/LMTP sink for integration tests, built on aiosmtpd.

The sink runs in a thread on 127.0.0.1 and keeps everything it saw:
the dialogue line by line (with a flag telling whether more client data
was already waiting when a command was read - the mark of a pipelined
client), and each message with its envelope, MAIL/RCPT parameters and the
exact bytes received.

It can advertise or hide extensions (SIZE with a limit, 8BITMIME, DSN,
CHUNKING, BINARYMIME, SMTPUTF8, PIPELINING, STARTTLS, AUTH), answer
chosen commands or recipients with chosen replies, and be slow.
"""

import asyncio
import base64
import re
import ssl
import threading
import time

from aiosmtpd.controller import Controller, UnixSocketController
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, syntax


class Message:
    def __init__(self, mail_from, mail_params, rcpts, data, via):
        self.mail_from = mail_from
        self.mail_params = mail_params      # list of "KEY=VALUE" / "KEY"
        self.rcpts = rcpts                  # list of (address, [params])
        self.data = data                    # bytes as received (DATA: unstuffed)
        self.via = via                      # "DATA" or "BDAT"

    def param(self, key):
        for p in self.mail_params:
            k, _, v = p.partition("=")
            if k.upper() == key.upper():
                return v if _ else True
        return None


class SinkConfig:
    def __init__(self, **kw):
        self.keywords = kw.get("keywords", ["PIPELINING", "8BITMIME", "SIZE 10240000", "DSN",
                                            "CHUNKING", "ENHANCEDSTATUSCODES", "SMTPUTF8"])
        self.hide = set(k.upper() for k in kw.get("hide", []))
        self.rcpt_replies = kw.get("rcpt_replies", {})     # address -> "550 5.1.1 no"
        self.mail_reply = kw.get("mail_reply")             # e.g. "451 4.3.0 try later"
        self.data_reply = kw.get("data_reply")             # final reply after content
        self.greeting = kw.get("greeting")                 # e.g. "421 busy"
        self.delay = kw.get("delay", 0.0)                  # seconds before each reply
        self.auth = kw.get("auth")                         # (user, password)
        self.tls_context = kw.get("tls_context")
        self.lmtp = kw.get("lmtp", False)
        self.lmtp_rcpt_final = kw.get("lmtp_rcpt_final", {})  # address -> final reply
        self.ehlo_reply = kw.get("ehlo_reply")             # e.g. "502 5.5.1 no EHLO here"
        self.auth_mechs = kw.get("auth_mechs", "PLAIN LOGIN")
        self.unix_socket = kw.get("unix_socket")           # listen on a UNIX socket (LMTP)


class _Handler:
    def __init__(self, sink):
        self.sink = sink

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        cfg = self.sink.config
        out = [responses[0]]
        kws = list(cfg.keywords)
        if cfg.tls_context is not None and not server._tls_protocol:
            kws.append("STARTTLS")
        if cfg.auth and (server._tls_protocol or cfg.tls_context is None):
            kws.append("AUTH " + cfg.auth_mechs)
        kws = [k for k in kws if k.split()[0].upper() not in cfg.hide]
        for i, k in enumerate(kws):
            out.append("250-" + k)
        if len(out) > 1:
            last = out[-1]
            out[-1] = "250 " + last[4:]
        else:
            out[0] = "250 " + out[0][4:]
        return out

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.sink.config.rcpt_replies.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.append(list(rcpt_options))
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        return self.sink._finish(envelope, "DATA")


class _SinkMixin:
    sink = None

    def connection_made(self, transport):
        super().connection_made(transport)
        self.sink._log("connect")
        self.sink.peers.append(transport.get_extra_info("peername"))
        if self.sink.config.greeting:
            # Refuse at the greeting, then hang up.
            transport.write((self.sink.config.greeting + "\r\n").encode())
            self.sink._log("< " + self.sink.config.greeting)
            transport.close()

    async def _handle_client(self):
        if self.sink.config.greeting:
            return
        reader = self._reader
        sink = self.sink
        orig = reader.readuntil

        async def logging_readuntil(sep=b"\n"):
            line = await orig(sep)
            pending = len(reader._buffer) > 0
            sink._log("> " + line.decode("utf-8", "replace").rstrip("\r\n"), pending=pending)
            return line
        reader.readuntil = logging_readuntil
        return await super()._handle_client()

    async def push(self, status):
        if self.sink.config.delay:
            await asyncio.sleep(self.sink.config.delay)
        text = status if isinstance(status, str) else status.decode()
        self.sink._log("< " + text)
        return await super().push(status)

    async def smtp_EHLO(self, hostname):
        if self.sink.config.ehlo_reply:
            return await self.push(self.sink.config.ehlo_reply)
        return await super().smtp_EHLO(hostname)

    async def smtp_MAIL(self, arg):
        # Accept every parameter (DSN RET/ENVID, BODY=BINARYMIME, AUTH=) and record it.
        if await self.check_helo_needed():
            return
        if self.sink.config.mail_reply:
            return await self.push(self.sink.config.mail_reply)
        m = re.match(r"(?i)FROM:\s*<([^>]*)>\s*(.*)$", arg or "")
        if not m:
            return await self.push("501 5.5.4 Syntax: MAIL FROM:<address>")
        params = m.group(2).split()
        size = [p for p in params if p.upper().startswith("SIZE=")]
        limit = self.sink.size_limit()
        if size and limit and int(size[0][5:]) > limit:
            return await self.push("552 5.3.4 Message size exceeds fixed limit")
        self.envelope = Envelope()
        self.envelope.mail_from = m.group(1)
        self.envelope.mail_options = params
        self.envelope.rcpt_options = []
        await self.push("250 2.1.0 Ok")

    async def smtp_RCPT(self, arg):
        if not self.envelope.mail_from and self.envelope.mail_from != "":
            return await self.push("503 5.5.1 Error: need MAIL command")
        m = re.match(r"(?i)TO:\s*<([^>]*)>\s*(.*)$", arg or "")
        if not m:
            return await self.push("501 5.5.4 Syntax: RCPT TO:<address>")
        status = await self._call_handler_hook("RCPT", m.group(1), m.group(2).split())
        await self.push(status)

    @syntax("BDAT size [LAST]")
    async def smtp_BDAT(self, arg):
        parts = (arg or "").split()
        if not parts or not parts[0].isdigit() or len(parts) > 2 or \
                (len(parts) == 2 and parts[1].upper() != "LAST"):
            return await self.push("501 5.5.4 Syntax: BDAT size [LAST]")
        n = int(parts[0])
        chunk = await self._reader.readexactly(n) if n else b""
        self.sink._log("> [%d octets]" % n)
        env = self.envelope
        if not hasattr(env, "bdat_data"):
            env.bdat_data = b""
        env.bdat_data += chunk
        if len(parts) == 2:
            env.content = env.original_content = env.bdat_data
            status = self.sink._finish(env, "BDAT")
            if isinstance(status, list):
                for s in status:
                    await self.push(s)
            else:
                await self.push(status)
            self._set_rset_state()
        else:
            await self.push("250 2.0.0 %d octets received" % n)

    async def smtp_AUTH(self, arg):
        cfg = self.sink.config
        if not cfg.auth:
            return await self.push("502 5.5.1 AUTH not supported")
        parts = (arg or "").split()
        mech = parts[0].upper() if parts else ""
        if mech == "PLAIN":
            if len(parts) > 1:
                blob = parts[1]
            else:
                await self.push("334 ")
                blob = (await self._reader.readline()).decode().strip()
            try:
                _, user, pw = base64.b64decode(blob).decode().split("\0")
            except Exception:
                return await self.push("501 5.5.2 bad encoding")
        elif mech == "LOGIN":
            await self.push("334 VXNlcm5hbWU6")
            user = base64.b64decode((await self._reader.readline()).strip()).decode()
            await self.push("334 UGFzc3dvcmQ6")
            pw = base64.b64decode((await self._reader.readline()).strip()).decode()
        else:
            return await self.push("504 5.5.4 mechanism not supported")
        if (user, pw) == tuple(cfg.auth):
            self.sink.auth_log.append((mech, user, bool(self._tls_protocol)))
            self.session.authenticated = True
            return await self.push("235 2.7.0 Authentication successful")
        return await self.push("535 5.7.8 Authentication failed")


class _SinkSMTP(_SinkMixin, SMTP):
    pass


class _SinkLMTP(_SinkMixin, LMTP):
    pass


class _Controller(Controller):
    def __init__(self, sink, **kw):
        self.sink = sink
        super().__init__(_Handler(sink), hostname=sink.host, port=sink.port, **kw)

    def factory(self):
        cls = _SinkLMTP if self.sink.config.lmtp else _SinkSMTP
        cls.sink = self.sink
        kw = dict(data_size_limit=None, enable_SMTPUTF8=True, decode_data=False)
        if self.sink.config.tls_context is not None:
            kw["tls_context"] = self.sink.config.tls_context
            kw["require_starttls"] = False
        kw["auth_require_tls"] = False
        return cls(self.handler, **kw)


class _UnixController(UnixSocketController):
    def __init__(self, sink, **kw):
        self.sink = sink
        super().__init__(_Handler(sink), unix_socket=sink.config.unix_socket, **kw)

    factory = _Controller.factory


class Sink:
    """Start with Sink(port=N, **config); .messages, .dialogue, .stop()."""

    def __init__(self, port, host="127.0.0.1", **config):
        self.port = port
        self.host = host
        self.config = SinkConfig(**config)
        self.messages = []
        self.dialogue = []          # (text, pending_flag)
        self.auth_log = []
        self.peers = []
        self.connections = 0
        self._lock = threading.Lock()
        self._controller = _UnixController(self) if self.config.unix_socket else _Controller(self)
        self._controller.start()

    def size_limit(self):
        for k in self.config.keywords:
            if k.upper().startswith("SIZE ") and "SIZE" not in self.config.hide:
                return int(k.split()[1])
        return 0

    def _log(self, text, pending=False):
        with self._lock:
            if text == "connect":
                self.connections += 1
            self.dialogue.append((text, pending))

    def _finish(self, envelope, via):
        rcpts = list(zip(envelope.rcpt_tos, getattr(envelope, "rcpt_options", [[]] * len(envelope.rcpt_tos))))
        msg = Message(envelope.mail_from, list(envelope.mail_options or []), rcpts,
                      envelope.original_content or envelope.content or b"", via)
        with self._lock:
            self.messages.append(msg)
        if self.config.lmtp:
            out = []
            for r in envelope.rcpt_tos:
                out.append(self.config.lmtp_rcpt_final.get(r, "250 2.0.0 <%s> delivered" % r))
            return "\r\n".join(out)
        return self.config.data_reply or "250 2.0.0 Ok: queued as SINK%d" % len(self.messages)

    def wait_messages(self, n, timeout=15):
        end = time.time() + timeout
        while time.time() < end:
            with self._lock:
                if len(self.messages) >= n:
                    return list(self.messages)
            time.sleep(0.05)
        raise AssertionError("sink got %d of %d messages; dialogue:\n%s" % (
            len(self.messages), n, "\n".join(t for t, _ in self.dialogue[-40:])))

    def commands(self):
        return [t[2:] for t, _ in self.dialogue if t.startswith("> ")]

    def stop(self):
        self._controller.stop()
