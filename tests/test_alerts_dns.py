"""A webhook's host is resolved once: the addresses checked are the one connected to (issue
16), so a DNS rebind between the check and the connection (the name first answering an
allowed address, then a refused one) cannot send a notification where it is refused.

The resolver is the far edge here and the one thing stood in for: ``socket.getaddrinfo``
answers the name ``hook.test`` as a rebinding DNS server would (127.0.0.1, allowed, the
first time; 127.0.0.2, refused, after), every other name as the system does. Two real
receivers listen on the same port of those two addresses; the delivery is llmtap's own."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmtap.server.alerts import evaluate
from llmtap.server.alerts.api import check_item
from llmtap.server.alerts.notify import deliver
from llmtap.server.errors import ApiError

from ._receivers import Mailbox, Webhook

NAME = "hook.test"


@pytest.fixture
def rebinding(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The lookups of ``NAME``; its answers: 127.0.0.1 first, then 127.0.0.2."""
    lookups: list[str] = []
    system = socket.getaddrinfo

    def resolver(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == NAME:
            lookups.append(host)
            return system("127.0.0.1" if len(lookups) == 1 else "127.0.0.2", *args, **kwargs)
        return system(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    monkeypatch.setenv("LLMTAP_ALERT_ALLOW_NETWORKS", "127.0.0.1/32")
    yield lookups


def test_the_connection_goes_to_the_address_checked_not_a_rebound_one(
    rebinding: list[str],
) -> None:
    allowed = Webhook()
    refused = Webhook(allowed.port, host="127.0.0.2")
    try:
        channel = {"kind": "webhook", "name": "ops", "url": f"http://{NAME}:{allowed.port}/h"}
        rule = {"name": "r", "measure": "requests", "threshold": 1}
        note = evaluate.test_note("p", 1, "rule", rule)
        assert deliver(channel, note, 5.0) == "the webhook answered 200"
        assert rebinding == [NAME]  # one lookup: the check's
        assert refused.received == []
        ((headers, _),) = allowed.received
        assert headers["host"] == f"{NAME}:{allowed.port}"  # the URL's host, as sent
        # The name now answers the refused address: the check, the one lookup, refuses it.
        with pytest.raises(ValueError, match=r"127\.0\.0\.2"):
            deliver(channel, note, 5.0)
        assert rebinding == [NAME, NAME] and refused.received == []
    finally:
        allowed.close()
        refused.close()


def test_over_https_the_address_checked_is_reached_under_the_urls_name(
    rebinding: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The TLS server name stays the URL's host: the receiver's certificate (for ``NAME``
    only, trusted as a private CA is, through SSL_CERT_FILE) is checked against it, though
    the connection goes to an address."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={NAME}",
         "-addext", f"subjectAltName=DNS:{NAME}"],
        check=True, capture_output=True,
    )  # fmt: skip
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    allowed = Webhook(tls=(cert, key))
    try:
        channel = {"kind": "webhook", "name": "ops", "url": f"https://{NAME}:{allowed.port}/h"}
        rule = {"name": "r", "measure": "requests", "threshold": 1}
        note = evaluate.test_note("p", 1, "rule", rule)
        assert deliver(channel, note, 5.0) == "the webhook answered 200"
        assert rebinding == [NAME] and len(allowed.received) == 1
    finally:
        allowed.close()


def test_an_smtp_server_is_reached_at_the_address_checked_and_a_private_one_refused(
    rebinding: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """E-mail channels as webhooks: a host that resolves to a private address (this
    server's own services, a cloud's metadata) is refused when the channel is made and when
    it is used, and the connection goes to the address checked."""
    box = Mailbox()
    try:
        channel = {
            "kind": "email", "name": "mail", "host": NAME, "port": box.port,
            "starttls": False, "username": box.user, "password": box.password,
            "sender": "llmtap@example.com", "to": ["ops@example.com"],
        }  # fmt: skip
        rule = {"name": "r", "measure": "requests", "threshold": 1}
        note = evaluate.test_note("p", 1, "rule", rule)
        assert deliver(channel, note, 5.0) == "mail accepted for ops@example.com"
        assert rebinding == [NAME] and len(box.messages) == 1
        with pytest.raises(ValueError, match=r"the SMTP server 'hook.test' is 127\.0\.0\.2"):
            deliver(channel, note, 5.0)
        monkeypatch.setenv("LLMTAP_ALERT_ALLOW_NETWORKS", "")
        with pytest.raises(ApiError) as refused:
            check_item("channel", {**channel, "host": "127.0.0.1"})
        assert refused.value.status == 400 and "not a public address" in refused.value.message
    finally:
        box.close()
