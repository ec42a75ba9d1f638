"""Providers played by local servers on real sockets, for the outbox tests: the mail server (enough of
an SMTP conversation: it takes every command, answers the recipient as told, and can keep a message
without ever giving its final answer) and a port where nothing listens. Twilio is played by
`tests.support.twilio`."""

from __future__ import annotations

import socket
import socketserver
import threading

import pytest

from tests.support.waiting import PATIENCE


def closed_port() -> int:
    """A local port nothing listens on: connecting is refused at once (nothing went)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Smtp(socketserver.StreamRequestHandler):
    """One SMTP conversation. The server's `rcpt_reply` answers each recipient; with `hang`, it keeps
    the message and never gives its final answer (until the test ends)."""

    def handle(self):
        server = self.server
        self.wfile.write(b"220 mail.example.com ESMTP\r\n")
        in_data = False
        for line in iter(self.rfile.readline, b""):
            if in_data:
                if line == b".\r\n":
                    server.received += 1
                    if server.hang:
                        server.ended.wait(PATIENCE)
                        return
                    self.wfile.write(b"250 2.0.0 queued\r\n")
                    in_data = False
                continue
            verb = line[:4].upper()
            if verb == b"DATA":
                self.wfile.write(b"354 go ahead\r\n")
                in_data = True
            elif verb == b"RCPT":
                server.rcpts += 1
                self.wfile.write(server.rcpt_reply)
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")


@pytest.fixture
def smtp(settings):
    """The member emails' mail server: Django's SMTP backend pointed at a local server. Set its
    `rcpt_reply` (e.g. b"550 5.1.1 no such mailbox\\r\\n") or `hang`; read `rcpts` (recipients asked)
    and `received` (messages handed over). EMAIL_TIMEOUT is long, for a busy machine: a test of a
    server that never answers sets a short one."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Smtp)
    server.daemon_threads, server.received, server.rcpts, server.hang = True, 0, 0, False
    server.rcpt_reply, server.ended = b"250 ok\r\n", threading.Event()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.server_address[1]
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 10
    yield server
    server.ended.set()
    server.shutdown()
    server.server_close()
