"""PII redaction: the redactor on its own, then ``redact_pii=True`` end to end (nothing of the
originals in the stored event's JSON, the caller's objects untouched), then the server's
per-project ``redact_fields`` for events from other SDKs."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

import llmtap
from llmtap.fake_provider import FakeProvider
from llmtap.pii import redact_text, redact_value

from .conftest import Project, Server, start_server, stop_server, tap_config

EMAIL = "ana.lopez@example.com"
PHONE = "+44 20 7946 0958"
CARD = "4111 1111 1111 1111"
SSN = "536-22-8726"
IBAN = "DE89 3704 0044 0532 0130 00"
IP = "203.0.113.77"
OPENAI_KEY = "sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z" * 2
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
ADDRESS = "1600 Pennsylvania Avenue"
NAME = "Ana Lopez"
ORIGINALS = [EMAIL, PHONE, CARD, SSN, IBAN, IP, OPENAI_KEY, JWT, ADDRESS, "Lopez"]
PII_TEXT = (
    f"Hi {NAME}, write to {EMAIL} or call {PHONE}. Card {CARD}, SSN {SSN}, IBAN {IBAN}, "
    f"from {IP}, key {OPENAI_KEY}, token {JWT}. I live at {ADDRESS}."
)


def test_each_kind_gets_its_placeholder() -> None:
    assert redact_text(PII_TEXT) == (
        "Hi <PERSON>, write to <EMAIL_ADDRESS> or call <PHONE_NUMBER>. Card <CREDIT_CARD>, "
        "SSN <US_SSN>, IBAN <IBAN_CODE>, from <IP_ADDRESS>, key <SECRET>, token <SECRET>. "
        "I live at <STREET_ADDRESS>."
    )
    key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----"
    assert redact_text(f"use\n{key}\nthanks") == "use\n<SECRET>\nthanks"
    assert redact_text("Authorization: Bearer abcdefghijklmnop1234") == (
        "Authorization: Bearer <SECRET>"
    )
    assert redact_text("Best regards,\nMaria van der Berg") == "Best regards,\n<PERSON>"


def test_lookalikes_are_left_alone() -> None:
    for text in [
        "Version 1.2.3 released on 2024-05-01 at 10:30.",
        "Order #74060310 totals $1,299.99; card 4111 1111 1111 1112 fails its checksum.",
        "Hi there, thanks for the help! Request id 550e8400-e29b-41d4-a716-446655440000.",
        "SSN 000-12-3456 is not valid, nor is DE00 3704 0044 0532 0130 00.",
    ]:
        assert redact_text(text) == text


# Text that made a pattern start again inside a long run and read it to its end each time:
# quadratic. Each maker gives about ``n`` kilobytes.
ADVERSARIAL = {
    "e-mail local part": lambda n: "a/" * (500 * n) + " @",
    "e-mail beside base64": lambda n: "Reply to ana@example.com: " + "QUJD+/" * (170 * n),
    "German street word": lambda n: "1 " + "Ab-" * (340 * n),
    "Italian street": lambda n: "1 " + "Via Roma " * (110 * n),
    "JWT": lambda n: "eyJ-" * (250 * n),
    "table of numbers": lambda n: " ".join(f"{i * 37 % 1000} {i % 97}" for i in range(150 * n)),
}


@pytest.mark.parametrize("kind", ADVERSARIAL)
def test_redaction_time_grows_linearly_with_adversarial_text(kind: str) -> None:
    """Four times the text takes about four times as long, not sixteen: the ratio of two
    sizes, measured in one process, is what a noisy machine keeps (best of three each)."""
    import time

    def seconds(n: int) -> float:
        text = ADVERSARIAL[kind](n)
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            redact_text(text)
            best = min(best, time.perf_counter() - start)
        return best

    redact_text("warm up: +44 20 7946 0958, Ana Lopez")
    small, large = seconds(8), seconds(32)
    assert large < 8 * small + 0.05, (small, large)


def test_a_table_of_numbers_holds_no_phone_number() -> None:
    """Numbers beside numbers are a table, not phone numbers written out (the README: numbers
    stay); a phone number written as one beside them is still found."""
    table = " ".join(f"{i * 37 % 1000} {i * 11 % 100}" for i in range(2000))
    assert redact_text(table) == table
    assert redact_text(f"{table}, call {PHONE}") == f"{table}, call <PHONE_NUMBER>"


def test_values_keep_their_type_and_the_input_is_not_changed() -> None:
    value = {"email": EMAIL, "n": 3, "ok": True, "ratio": 0.5, "none": None, "l": [IP, 7]}
    before = copy.deepcopy(value)
    assert redact_value(value) == {
        "email": "<EMAIL_ADDRESS>",
        "n": 3,
        "ok": True,
        "ratio": 0.5,
        "none": None,
        "l": ["<IP_ADDRESS>", 7],
    }
    assert value == before


class _Hostile(str):
    """A string whose methods fail: redaction must drop it, not send it."""

    def lower(self) -> str:  # type: ignore[override]
        raise RuntimeError("boom")


def test_a_failing_redaction_drops_the_content(caplog: pytest.LogCaptureFixture) -> None:
    assert redact_value({"a": _Hostile(f"mail {EMAIL}")}) == {"a": "<REDACTION_FAILED>"}


@pytest.fixture
def redacting(provider: FakeProvider, project: Project) -> Iterator[llmtap.Client]:
    client = llmtap.Client(
        api_key="sk-fake",
        base_url=provider.base_url,
        max_retries=0,
        llmtap=tap_config(project, redact_pii=True, attributes={"user_email": EMAIL}),
    )
    yield client
    client.close()


def assert_no_pii(event: dict) -> None:
    whole = json.dumps(event, ensure_ascii=False)
    leaked = [value for value in ORIGINALS if value in whole]
    assert not leaked, leaked


def test_nothing_leaves_the_process(
    redacting: llmtap.Client, project: Project, provider: FakeProvider
) -> None:
    messages = llmtap.TemplateChat(
        [
            {"role": "system", "content": f"Support agent. Escalations: {EMAIL}"},
            {"role": "user", "content": "Customer says: {note} [[reply:" + PII_TEXT + "]]"},
        ],
        {"note": PII_TEXT, "count": 3, "vip": True},
    )
    before = copy.deepcopy((list(messages), messages.template, messages.params))
    completion = redacting.chat.completions.create(
        model="gpt-4o-mini",
        messages=messages,
        user=EMAIL,
        llmtap={"prompt_template_name": "support", "attributes": {"ip": IP, "n": 5}},
    )
    # The call itself is untouched: the provider got the real text, the caller its reply.
    assert PII_TEXT in provider.requests[-1]["body"]["messages"][1]["content"]
    assert completion.choices[0].message.content == PII_TEXT
    assert (list(messages), messages.template, messages.params) == before

    redacting.send_feedback(
        feedback_key=completion.model_extra["llmtap_feedback_key"],
        better_response=f"Thanks, {NAME}. Call me on {PHONE}",
        rating=0.5,
    )
    redacting.flush()
    event = project.event(project.events()[0]["id"])
    assert_no_pii(event)
    assert "<EMAIL_ADDRESS>" in event["request"]["messages"][0]["content"]
    assert event["template_params"]["count"] == 3  # types kept
    assert event["template_params"]["vip"] is True
    assert event["template_params"]["note"].startswith("Hi <PERSON>, write to <EMAIL_ADDRESS>")
    assert event["template_chat"][1]["content"].startswith("Customer says: {note}")
    assert event["output_text"].startswith("Hi <PERSON>")
    assert event["attributes"] == {"user_email": "<EMAIL_ADDRESS>", "ip": "<IP_ADDRESS>", "n": 5}
    assert event["request"]["user"] == "<EMAIL_ADDRESS>"
    assert event["feedback"][0]["better_response"] == "Thanks, <PERSON>. Call me on <PHONE_NUMBER>"


def test_tool_call_arguments_are_redacted(redacting: llmtap.Client, project: Project) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "email",
                "parameters": {"type": "object", "properties": {"to": {"type": "string"}}},
            },
        }
    ]
    history = [
        {"role": "user", "content": "mail him"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "email", "arguments": json.dumps({"to": EMAIL})},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": f"sent to {EMAIL} from {IP}"},
        {"role": "user", "content": "[[tool:email]]"},
    ]
    redacting.chat.completions.create(model="gpt-4o-mini", messages=history, tools=tools)
    assert "ana.lopez" in history[1]["tool_calls"][0]["function"]["arguments"]  # not mutated
    redacting.flush()
    event = project.event(project.events()[0]["id"])
    assert_no_pii(event)
    arguments = event["request"]["messages"][1]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(arguments) == {"to": "<EMAIL_ADDRESS>"}
    assert event["response"]["choices"][0]["message"]["tool_calls"][0]["function"]["name"]


def test_missing_extra_is_a_clear_error_at_start_up() -> None:
    code = (
        "import sys; sys.modules['phonenumbers'] = None\n"
        "import llmtap\n"
        "try:\n"
        "    llmtap.Client(api_key='sk-x', llmtap={'redact_pii': True})\n"
        "except ImportError as e:\n"
        "    print(type(e).__name__, e)\n"
        "llmtap.Client(api_key='sk-x')  # without redaction the extra is not needed\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith("PiiExtraMissing llmtap: redact_pii needs the 'pii' extra")
    assert "pip install 'llmtap[pii]'" in out


@pytest.fixture(scope="module")
def redacting_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    config = {"shop": ["request", "output_text", "feedback"], "*": "all", "open": []}
    server = start_server(
        tmp_path_factory.mktemp("redacting"), {"LLMTAP_REDACT_FIELDS": json.dumps(config)}
    )
    yield server
    stop_server(server)


def foreign_event(text: str) -> dict:
    """An event as another SDK would send it, PII and all."""
    return {
        "id": str(uuid.uuid4()),
        "api": "chat",
        "status": "ok",
        "started_at": datetime.now(timezone.utc).isoformat(),
        "request": {"model": "m", "messages": [{"role": "user", "content": text}]},
        "output_text": text,
        "attributes": {"who": EMAIL},
        "feedback_key": uuid.uuid4().hex,
    }


def test_server_redacts_chosen_fields_per_project(redacting_server: Server) -> None:
    results = {}
    for project in ("shop", "other", "open"):
        key = redacting_server.new_key(project)
        event = foreign_event(PII_TEXT)
        posted = redacting_server.post("/api/v1/events", key, json={"events": [event]})
        assert posted.status_code == 200, posted.text
        fb = {"feedback_key": event["feedback_key"], "better_response": f"mail {EMAIL}"}
        assert redacting_server.post("/api/v1/feedback", key, json=fb).status_code == 200
        got = redacting_server.get(f"/api/v1/events/{event['id']}", key)
        results[project] = got.json()

    shop = results["shop"]  # request, output_text and feedback chosen; attributes not
    assert EMAIL not in json.dumps(shop["request"]) and EMAIL not in shop["output_text"]
    assert shop["feedback"][0]["better_response"] == "mail <EMAIL_ADDRESS>"
    assert shop["attributes"] == {"who": EMAIL}
    assert_no_pii(results["other"])  # "*": every field
    assert results["other"]["attributes"] == {"who": "<EMAIL_ADDRESS>"}
    assert results["open"]["output_text"] == PII_TEXT  # its own entry: nothing


def test_the_server_redacts_what_it_keeps_and_what_the_cut_splits(tmp_path: Path) -> None:
    """With a field cut to ``max_field_bytes``, redaction reads the kept part and a little
    past it, not the whole of what was sent: an address the cut splits is still redacted
    (no half of it kept), and one far past the cut is never read (gone with the rest)."""
    config = {"*": "all"}
    env = {"LLMTAP_REDACT_FIELDS": json.dumps(config), "LLMTAP_MAX_FIELD_BYTES": "2000"}
    server = start_server(tmp_path, env)
    try:
        key = server.new_key("cut")
        split = "word " * 399 + EMAIL + " more" * 100  # the cut falls inside the address
        far = split + " filler" * 200_000 + " " + EMAIL  # a 1.4 MB text
        events = [foreign_event(split), foreign_event(far)]
        assert server.post("/api/v1/events", key, json={"events": events}).status_code == 200
        for sent in events:
            got = server.get(f"/api/v1/events/{sent['id']}", key).json()
            kept = got["output_text"]
            assert len(kept.encode()) <= 2000 and "output_text" in got["truncated"]
            assert "ana.l" not in kept and "example" not in kept
            assert kept.startswith("word word")
    finally:
        stop_server(server)


def test_a_json_key_says_what_its_value_is() -> None:
    """Tool-call arguments and attributes: ``"phone":`` is the context a running text would
    give, ``"password":`` a credential's assignment; a number under such a key is redacted
    too (as its placeholder), any other number kept."""
    arguments = json.dumps(
        {"customer": "Ana Lopez", "phone": "4155550132", "password": "hunter2hunter2",
         "api_key": "abcdefgh1234", "phone_number": 4155550132, "card": 4111111111111111,
         "ssn": 536228726, "count": 4155550132, "role": "system"}
    )  # fmt: skip
    assert json.loads(redact_value(arguments)) == {
        "customer": "<PERSON>",
        "phone": "<PHONE_NUMBER>",
        "password": "<SECRET>",
        "api_key": "<SECRET>",
        "phone_number": "<PHONE_NUMBER>",
        "card": "<CREDIT_CARD>",
        "ssn": "<US_SSN>",
        "count": 4155550132,
        "role": "system",
    }


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("The customer's card 4111 1111 1111 1111", "The customer's card <CREDIT_CARD>"),
        ("Total $25.00, card 4111 1111 1111 1111", "Total $25.00, card <CREDIT_CARD>"),
        ("order 4111 1111 1111 1111", "order 4111 1111 1111 1111"),  # the word says: no card
        ("-----BEGIN PGP PRIVATE KEY BLOCK-----\nlQOYBF\n-----END PGP PRIVATE KEY BLOCK-----",
         "<SECRET>"),
        ("Hi Ana", "Hi <PERSON>"),
        ("a@b.co", "<EMAIL_ADDRESS>"),
    ],
)  # fmt: skip
def test_what_had_slipped_through(text: str, redacted: str) -> None:
    """A card a nearer word names after an "other" word, a PGP private key, and text of five
    or six characters."""
    assert redact_text(text) == redacted
