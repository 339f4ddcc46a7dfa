"""Real notification receivers on loopback, for the alert tests: a webhook endpoint (an HTTP
server that keeps every body and its headers, and can be told to fail or hang) and an SMTP
server (aiosmtpd) that keeps every mail, behind a login."""

from __future__ import annotations

import email
import email.policy
import json
import ssl
import threading
import time
from collections.abc import Callable
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from .conftest import free_port


class Webhook:
    """Records what is POSTed; answers ``status``, or holds the request ``hang`` seconds."""

    def __init__(
        self, port: int | None = None, host: str = "127.0.0.1", tls: tuple[Path, Path] | None = None
    ) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.host = host
        self.scheme = "https" if tls else "http"
        self.status = 200
        self.hang = 0.0
        self._lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                if hook.hang:
                    time.sleep(hook.hang)
                with hook._lock:
                    hook.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(hook.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.port = port or free_port()
        self._http = ThreadingHTTPServer((host, self.port), Handler)
        if tls is not None:  # HTTPS with this certificate (and key)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self._http.socket = context.wrap_socket(self._http.socket, server_side=True)
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}/hook"

    def bodies(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(body) for _, body in self.received]

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()


class Mailbox:
    """An SMTP server on loopback that takes mail from ``user``/``password`` only; with
    ``tls`` (a certificate and its key), only after STARTTLS, as a real relay does."""

    user, password = "alerts", "s3cret"

    def __init__(self, tls: tuple[Path, Path] | None = None) -> None:
        self.messages: list[EmailMessage] = []
        box = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                message = email.message_from_bytes(envelope.content, policy=email.policy.default)
                box.messages.append(message)  # type: ignore[arg-type]
                return "250 OK"

        def authenticator(
            server: Any, session: Any, envelope: Any, mechanism: str, data: Any
        ) -> AuthResult:
            ok = (
                isinstance(data, LoginPassword)
                and data.login.decode() == box.user
                and data.password.decode() == box.password
            )
            return AuthResult(success=ok)

        self.port = free_port()
        context = None
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*tls)
        self._controller = Controller(
            Handler(),
            hostname="127.0.0.1",
            port=self.port,
            authenticator=authenticator,
            # Without a certificate (loopback tests), STARTTLS is off in the channel.
            auth_require_tls=tls is not None,
            require_starttls=tls is not None,
            tls_context=context,
        )
        self._controller.start()

    def close(self) -> None:
        self._controller.stop()


def wait_until(check: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    """Poll ``check`` until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or check}")
