"""Notifications: what an alert says, and its delivery to webhooks (a generic JSON body or
Slack's, signed when the channel has a secret) and to e-mail over SMTP (STARTTLS, login).

Durable: the evaluator writes each notification (one per channel) to an outbox table in the
transaction that saves the state change behind it, and only then is it sent. The lease
holder's evaluator hands what is due to ``Notifier.deliver_due`` each cycle; a notification
handed out is claimed in the database until its attempt (and the wait before the next) is
over, so no other process sends it meanwhile, and one left by a process that died is claimed
again once that runs out. So a notification is neither lost when a process dies between the
state and the send, nor sent twice by two processes; a receiver may still see one again if
a process dies after the receiver answered and before the answer was recorded: the body's
``id`` is the notification's, for it to tell.

Delivery runs on a pool of threads of its own, never on the evaluator's: a webhook that hangs
costs a thread ``alert_timeout`` seconds per read or write, and the next evaluation runs on
time. Each delivery is tried up to ``ATTEMPTS`` times, waiting ``alert_retry_delay`` seconds,
then twice that, and so on, each wait spread by a random part (as logfire's exporter does), so
receivers that come back are not hit by every server at once. The waits are kept by one
thread, not by the pool's: a receiver that fails holds a pool thread for its attempts only,
and the other projects' notifications go out meanwhile. Every attempt, good or bad, is kept
in the rule's history.

The webhook's signature: ``X-Llmtap-Signature: sha256=<hex>``, the HMAC-SHA256 of the body's
bytes with the channel's secret as the key (verify it before trusting the body).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import random
import smtplib
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from heapq import heappop, heappush
from itertools import count
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx2

from ...settings import resolve
from ...store import Store

__all__ = [
    "ATTEMPTS",
    "Notifier",
    "check_webhook_host",
    "checked_address",
    "checked_host",
    "deliver",
    "signature",
    "summary",
]

log = logging.getLogger("llmtap.alerts")
ATTEMPTS = 4
SIGNATURE_HEADER = "X-Llmtap-Signature"
_EMOJI = {"firing": "🔴", "resolved": "✅", "budget": "💰", "test": "🧪"}


def signature(secret: str, body: bytes) -> str:
    """The value of ``X-Llmtap-Signature`` for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network] | None:
    """The networks ``alert_allow_networks`` adds to public addresses; None: any address."""
    raw = str(resolve("alert_allow_networks") or "")
    if raw.strip() == "*":
        return None
    return [
        ipaddress.ip_network(part.strip(), strict=False) for part in raw.split(",") if part.strip()
    ]


def checked_address(url: str) -> str | None:
    """The address to connect to for a webhook URL (see ``checked_host``)."""
    return checked_host(urlsplit(url).hostname or "", "the webhook's host")


def checked_host(host: str, what: str) -> str | None:
    """The address to connect to for ``host`` (a webhook's, an SMTP server's): resolved
    once, every address checked. Refuses (ValueError, saying why) a host that is, or resolves
    to, an address that is not public (loopback, private, link-local: this server's own
    pages and services, a cloud's metadata service) unless ``alert_allow_networks`` lets it.
    None when every address is allowed (``*``): then nothing is checked, and the host is
    connected to as it resolves then."""
    allowed = _allowed_networks()
    if allowed is None:
        return None
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        raise ValueError(f"{what} {host!r} does not resolve: {exc}") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    for address in addresses:
        if _public_address(address) or any(address in net for net in allowed):
            continue
        raise ValueError(
            f"{what} {host!r} is {address}, not a public address: allow its network"
            " with LLMTAP_ALERT_ALLOW_NETWORKS (for example 127.0.0.0/8) to reach it"
        )
    if not addresses:
        raise ValueError(f"{what} {host!r} does not resolve")
    return str(addresses[0])


# IPv6 prefixes whose addresses carry an IPv4 address a gateway forwards to: NAT64's well-known
# prefix and its local-use one (RFC 6052, RFC 8215). Python reads 6to4's itself; Teredo's
# prefix is not global to begin with.
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def _public_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Global, and so is the IPv4 address inside it, if any: ``64:ff9b::a9fe:a9fe`` is a
    cloud's metadata service behind a NAT64 gateway."""
    if not address.is_global:
        return False
    if isinstance(address, ipaddress.IPv4Address):
        return True
    inner = [address.ipv4_mapped, address.sixtofour]
    if any(address in net for net in _NAT64):
        inner.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return all(v4.is_global for v4 in inner if v4 is not None)


def check_webhook_host(url: str) -> None:
    """Refuse (ValueError) a webhook URL ``checked_address`` refuses."""
    checked_address(url)


def _pinned(url: str, address: str) -> tuple[str, str, dict[str, Any]]:
    """(URL, Host header, request extensions) that reach ``address`` for ``url``: the same
    request, Host and TLS server name (certificate checked against it) the URL's host, so a
    resolver that answers differently a second time (a DNS rebind) is never asked again."""
    parts = urlsplit(url)
    userinfo, _, hostport = parts.netloc.rpartition("@")
    ip = f"[{address}]" if ":" in address else address
    netloc = (f"{userinfo}@" if userinfo else "") + ip + (f":{parts.port}" if parts.port else "")
    extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
    return urlunsplit(parts._replace(netloc=netloc)), hostport, extensions


def summary(note: dict[str, Any]) -> str:
    """One line a person reads: what happened, the value against the threshold, the window."""
    group = ", ".join(f"{k}={v}" for k, v in (note.get("group") or {}).items())
    where = f" [{group}]" if group else ""
    head = f"{_EMOJI.get(note['event'], '')} {note['event'].upper()}: {note['name']}{where}"
    if note["kind"] == "budget" and note["value"] is None:  # a test: nothing spent to tell
        return f"{head}: a budget of ${note['threshold']:.2f} a {note.get('period') or 'period'}"
    if note["kind"] == "budget":
        return (
            f"{head}: ${note['value']:.2f} spent of ${note['threshold']:.2f} this {note['period']}"
            f" ({100 * note['value'] / note['threshold']:.0f}%), forecast"
            f" ${note['forecast']:.2f} at the period's end"
        )
    value = "no value" if note["value"] is None else f"{note['value']:.4g}"
    if note.get("compare") and note.get("baseline") is not None:
        # The change, and what it is between: "error_rate 60 against 0 (a change of ...)".
        change = "up from 0" if note["baseline"] == 0 else f"a change of {value}%"
        current = "no value" if note.get("current") is None else f"{note['current']:.4g}"
        what = (
            f"{note['measure']} {current} against {note['baseline']:.4g} in the"
            f" {note['compare'].replace('_', ' ')} ({change}), {note['op']} threshold"
            f" {note['threshold']:.4g}%"
        )
    else:
        unit = "% change of " if note.get("compare") else ""
        what = f"{unit}{note['measure']} {value} {note['op']} threshold {note['threshold']:.4g}"
    quiet = ", no events since" if note.get("no_events") else ""
    return (
        f"{head}: {what} over {note['window']['from']} to {note['window']['to']}"
        f" ({note['events']} events{quiet})"
    )


def _slack_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _public(note: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in note.items() if k != "project_id"}  # an internal id


def _webhook(channel: dict[str, Any], note: dict[str, Any], timeout: float) -> str:
    if channel.get("format") == "slack":
        # Slack reads <...> as a mention or a link and & as an entity: the summary holds what
        # events said (a model name, an attribute's value), so it is escaped as Slack asks.
        text = f"{_slack_text(summary(note))}\n<{note['link']}|the events behind it>"
        payload: dict[str, Any] = {"text": text}
    else:
        payload = {**_public(note), "text": summary(note)}
    body = json.dumps(payload, ensure_ascii=False).encode()
    headers = {"content-type": "application/json", "user-agent": "llmtap-alerts"}
    if channel.get("secret"):
        headers[SIGNATURE_HEADER] = signature(channel["secret"], body)
    url = channel["url"]
    extensions: dict[str, Any] = {}
    address = checked_address(url)
    if address is not None:  # connect to the address checked, not to a second lookup's
        url, headers["host"], extensions = _pinned(url, address)
    # No redirects: a public URL must not bounce the request to a refused address.
    with httpx2.Client(timeout=timeout, follow_redirects=False) as client:
        response = client.post(url, content=body, headers=headers, extensions=extensions)
    if response.status_code >= 300:
        raise RuntimeError(f"the webhook answered {response.status_code}")
    return f"the webhook answered {response.status_code}"


class _PinnedSMTP(smtplib.SMTP):
    """An SMTP connection to the address checked for its host (a resolver that answers
    differently a second time is not asked again), speaking to it under the host's name
    (STARTTLS checks the certificate against the name)."""

    def __init__(self, address: str | None, host: str, port: int, timeout: float) -> None:
        self._address = address
        super().__init__(host, port, timeout=timeout)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return socket.create_connection((self._address or host, port), timeout, self.source_address)


def _email(channel: dict[str, Any], note: dict[str, Any], timeout: float) -> str:
    message = EmailMessage()
    # Names and group values are a key's text: any line break in them (U+2028 and the like
    # too) would make the header refuse the message, so the subject is one line of words.
    message["Subject"] = " ".join(summary(note).split())[:200]
    message["From"] = channel["sender"]
    message["To"] = ", ".join(channel["to"])
    lines = [summary(note), "", f"The events behind it: {note['link']}", ""]
    lines += [f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in _public(note).items()]
    message.set_content("\n".join(lines))
    address = checked_host(channel["host"], "the SMTP server")
    with _PinnedSMTP(address, channel["host"], channel["port"], timeout=timeout) as smtp:
        smtp.ehlo()
        if channel.get("starttls", True):
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()
        if channel.get("username"):
            smtp.login(channel["username"], channel.get("password") or "")
        refused = smtp.send_message(message)
    if refused:
        raise RuntimeError(f"the SMTP server refused {', '.join(refused)}")
    return f"mail accepted for {', '.join(channel['to'])}"


def deliver(channel: dict[str, Any], note: dict[str, Any], timeout: float) -> str:
    """Send ``note`` through ``channel`` once; what the receiver said, or an exception."""
    if channel["kind"] == "webhook":
        return _webhook(channel, note, timeout)
    return _email(channel, note, timeout)


def _failure(exc: BaseException) -> str:
    if isinstance(exc, httpx2.TimeoutException):
        return "timed out"
    if isinstance(exc, smtplib.SMTPResponseException):
        said = exc.smtp_error
        text = said.decode(errors="replace") if isinstance(said, bytes) else str(said)
        return f"the SMTP server answered {exc.smtp_code}: {text}"
    return f"{type(exc).__name__}: {exc}"


class Notifier:
    """Delivers the notifications of the outbox (see the module's docstring) on threads of
    its own, with retries, recording each attempt in the rule's history."""

    def __init__(
        self,
        store: Store,
        timeout: float | None = None,
        retry_delay: float | None = None,
        threads: int = 4,
    ) -> None:
        self._store = store
        self.timeout = float(resolve("alert_timeout", timeout))
        self.retry_delay = float(resolve("alert_retry_delay", retry_delay))
        self._closing = threading.Event()
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="llmtap-notify")
        self._lock = threading.Lock()
        self._running: set[tuple[int, str]] = set()  # handed to the pool, not finished
        # Notifications waiting to be tried again: (when, order, row), kept by one thread.
        self._retries: list[tuple[float, int, dict[str, Any]]] = []
        self._order = count()
        self._retry_wake = threading.Condition()
        self._retry_thread: threading.Thread | None = None

    def _claim_us(self) -> int:
        """How long past its attempt a notification stays claimed: the attempt's time out,
        twice (a mail's connect and send), and a margin."""
        return int((2 * self.timeout + 5) * 1_000_000)

    def deliver_due(self) -> int:
        """Claim the outbox's notifications that are due and deliver them in the background
        (the evaluator calls it each cycle, holding the lease); how many it took."""
        if self._closing.is_set():
            return 0
        now_us = int(time.time() * 1_000_000)
        taken = 0
        for row in self._store.claim_notifications(now_us, now_us + self._claim_us()):
            key = (row["project_id"], row["id"])
            with self._lock:
                if key in self._running:  # its claim ran out while it waited for a thread
                    continue
                self._running.add(key)
            self._pool.submit(self._deliver, row)
            taken += 1
        return taken

    def send_now(
        self, note: dict[str, Any], channels: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Deliver ``note`` once to each channel, now (a test notification); each outcome."""
        outcomes = []
        for channel in channels:
            outcome = self._attempt(note, channel, 1)
            try:
                self._store.record_alerts([], [_entry(note, outcome)])
            except Exception:  # the database is down: the answer still tells
                log.exception("cannot record a notification attempt")
            outcomes.append(outcome)
        return outcomes

    def close(self) -> None:
        self._closing.set()
        with self._retry_wake:
            self._retry_wake.notify()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _deliver(self, row: dict[str, Any]) -> None:
        """One attempt at a claimed notification, recorded with the outbox row's new state;
        another is due later (``_later``), the row claimed until past its time."""
        again = False
        try:
            note, attempt = row["note"], row["attempts"] + 1
            channels = self._store.alert_items(row["project_id"], "channel")
            channel = next((c["body"] for c in channels if c["name"] == row["channel"]), None)
            if channel is None:
                outcome = _outcome(note, row["channel"], attempt, False, "no such channel")
            else:
                outcome = self._attempt(note, channel, attempt)
            now_us = int(time.time() * 1_000_000)
            if outcome["ok"] or attempt >= ATTEMPTS or channel is None:
                state, wait = ("sent" if outcome["ok"] else "failed"), 0.0
            else:
                state = "pending"
                wait = self.retry_delay * 2 ** (attempt - 1) * (1 + random.random())
            next_us = now_us + int(wait * 1_000_000)
            self._store.finish_notification(
                row["project_id"],
                row["id"],
                state,
                attempt,
                next_us,
                next_us + self._claim_us() if state == "pending" else 0,
                _entry(note, outcome),
            )
            # Closing: the claim runs out, and the next process takes it.
            again = state == "pending" and not self._closing.is_set()
            if again:
                self._later({**row, "attempts": attempt}, wait)
        except Exception:  # the database is down: the claim runs out, and it is tried again
            log.exception("cannot deliver notification %s", row["id"])
        finally:
            if not again:
                with self._lock:
                    self._running.discard((row["project_id"], row["id"]))

    def _later(self, row: dict[str, Any], wait: float) -> None:
        """Hand ``row`` to the pool again in ``wait`` seconds."""
        with self._retry_wake:
            heappush(self._retries, (time.monotonic() + wait, next(self._order), row))
            if self._retry_thread is None:
                self._retry_thread = threading.Thread(
                    target=self._retry_loop, name="llmtap-notify-retry", daemon=True
                )
                self._retry_thread.start()
            self._retry_wake.notify()

    def _retry_loop(self) -> None:
        with self._retry_wake:
            while not self._closing.is_set():
                due = self._retries[0][0] - time.monotonic() if self._retries else None
                if due is None or due > 0:
                    self._retry_wake.wait(due)
                    continue
                row = heappop(self._retries)[2]
                try:
                    self._pool.submit(self._deliver, row)
                except RuntimeError:  # the pool shut down: the claim runs out
                    return

    def _attempt(
        self, note: dict[str, Any], channel: dict[str, Any], attempt: int
    ) -> dict[str, Any]:
        started = time.monotonic()
        try:
            said, ok = deliver(channel, note, self.timeout), True
        except Exception as exc:  # a receiver's failure is recorded, never raised
            said, ok = _failure(exc), False
        outcome = _outcome(note, channel["name"], attempt, ok, said)
        outcome["seconds"] = round(time.monotonic() - started, 3)
        return outcome


def _outcome(
    note: dict[str, Any], channel: str, attempt: int, ok: bool, said: str
) -> dict[str, Any]:
    return {
        "channel": channel,
        "ok": ok,
        "attempt": attempt,
        "of": ATTEMPTS if note["event"] != "test" else 1,
        "said": said[:500],
        "seconds": 0.0,
        "notification": note["event"],
    }


def _entry(note: dict[str, Any], outcome: dict[str, Any]) -> dict[str, Any]:
    """The rule's history entry of one attempt."""
    return {
        "project_id": note["project_id"],
        "kind": note["kind"],
        "name": note["name"],
        "group": note.get("group") or {},
        "at_us": int(time.time() * 1_000_000),
        "event": "sent" if outcome["ok"] else "failed",
        "detail": outcome,
    }
