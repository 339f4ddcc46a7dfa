"""PII pseudonyms (``redact_pii="pseudonymize"``) and what structure must not let escape: dict
keys, JSON inside strings, chat and chain ids, feedback; end to end through the real SDK and
server."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import llmtap
from llmtap.fake_provider import FakeProvider
from llmtap.pii import pseudonym_key, redact_text, redact_value

from .conftest import Project, start_server, stop_server, tap_config
from .test_pii import foreign_event

EMAIL = "priya.raman@example.com"
PHONE = "+44 20 7946 0958"
KEY_A = pseudonym_key("pseudonymize", "secret-a")
KEY_B = pseudonym_key("pseudonymize", "secret-b")
TOKEN = re.compile(r"<([A-Z_]+):([0-9a-f]{6})>")


def test_a_value_gets_the_same_token_for_one_secret_and_another_for_another() -> None:
    first = redact_text(f"Mail {EMAIL} or call {PHONE}.", KEY_A)
    again = redact_text(f"Reply to {EMAIL.upper()}; phone 0044 20 7946 0958", KEY_A)
    other = redact_text(f"Mail {EMAIL} or call {PHONE}.", KEY_B)
    tokens, tokens_again, tokens_other = (TOKEN.findall(t) for t in (first, again, other))
    assert [kind for kind, _ in tokens] == ["EMAIL_ADDRESS", "PHONE_NUMBER"]
    assert tokens == tokens_again  # case and the 00 prefix do not make another person
    assert [h for _, h in tokens] != [h for _, h in tokens_other]
    assert EMAIL not in first and "7946" not in first
    # Different values, different tokens; a title does not make another person.
    assert redact_text("mail a@example.com", KEY_A) != redact_text("mail b@example.com", KEY_A)
    assert TOKEN.findall(redact_text("Dr. Okafor said yes", KEY_A)) == TOKEN.findall(
        redact_text("Prof. Okafor said no", KEY_A)
    )


def test_placeholders_without_a_key() -> None:
    assert redact_text(f"Mail {EMAIL}") == "Mail <EMAIL_ADDRESS>"


def test_nothing_escapes_by_structure() -> None:
    value = {
        EMAIL: {"name": "Mei Chen", "tier": "gold"},  # a key that is personal data
        "b@example.com": [1, 2],
        "args": json.dumps({"to": EMAIL, "n": 5, "owner": {"name": "Lars Nowak"}}),
        "plain": '{"not json": ',
        "list": [f"call {PHONE}", 3.5, None, True],
        "tool": '{"name": "get_weather", "city": "Paris"}',  # nothing to redact: as it was
    }
    out = redact_value(value)
    assert out["<EMAIL_ADDRESS>"] == {"name": "<PERSON>", "tier": "gold"}
    assert out["<EMAIL_ADDRESS>#2"] == [1, 2]  # two redacted keys do not overwrite each other
    arguments = {"to": "<EMAIL_ADDRESS>", "n": 5, "owner": {"name": "<PERSON>"}}
    assert json.loads(out["args"]) == arguments
    assert out["plain"] == '{"not json": '
    assert out["list"] == ["call <PHONE_NUMBER>", 3.5, None, True]
    assert out["tool"] == value["tool"]
    # With a key, two different keys stay two different keys.
    keyed = redact_value({EMAIL: 1, "b@example.com": 2}, KEY_A)
    assert len(keyed) == 2 and all(TOKEN.fullmatch(k) for k in keyed)


def test_pseudonymize_needs_a_secret_and_checks_its_mode() -> None:
    with pytest.raises(ValueError, match="needs pii_secret"):
        llmtap.Client(api_key="sk-x", llmtap={"redact_pii": "pseudonymize"})
    with pytest.raises(ValueError, match="True, False or 'pseudonymize'"):
        llmtap.Client(api_key="sk-x", llmtap={"redact_pii": "yes please"})
    config = llmtap.Config(redact_pii="pseudonymize", pii_secret="hunter2-secret")
    assert "hunter2-secret" not in repr(config)


def test_the_environment_can_ask_for_pseudonyms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMTAP_REDACT_PII", "Pseudonymize")
    monkeypatch.setenv("LLMTAP_PII_SECRET", "abc-secret")
    settings = llmtap.Config().resolve()
    assert settings.redact_pii == "pseudonymize"
    assert settings.pii_key == b"abc-secret"
    assert "abc-secret" not in repr(settings)


def _client(provider: FakeProvider, project: Project, secret: str) -> llmtap.Client:
    config = tap_config(project, redact_pii="pseudonymize", pii_secret=secret)
    return llmtap.Client(
        api_key="sk-fake", base_url=provider.base_url, max_retries=0, llmtap=config
    )


def test_end_to_end_pseudonyms_group_one_person(provider: FakeProvider, project: Project) -> None:
    client = _client(provider, project, "project-secret")
    try:
        for text in (f"I am Priya Raman, mail {EMAIL}", f"Still waiting. {EMAIL}"):
            completion = client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": text}],
                llmtap={"chat_id": f"support-{EMAIL}", "chain_id": f"chain {PHONE}"},
            )
        client.send_feedback(
            feedback_key=completion.model_extra["llmtap_feedback_key"],
            better_response=f"Answer Priya Raman at {EMAIL}",
        )
        client.flush()
    finally:
        client.close()
    events = [project.event(e["id"]) for e in project.events()]
    whole = json.dumps(events)
    assert EMAIL not in whole and "Raman" not in whole and "7946" not in whole
    assert "project-secret" not in whole
    chat_ids = {e["chat_id"] for e in events}
    assert len(chat_ids) == 1 and TOKEN.search(chat_ids.pop())  # one person, one chat
    email_tokens = {t for e in events for t in TOKEN.findall(json.dumps(e["request"]))}
    assert len({h for kind, h in email_tokens if kind == "EMAIL_ADDRESS"}) == 1
    feedback = next(e for e in events if e["feedback"])["feedback"][0]["better_response"]
    assert TOKEN.findall(feedback)[-1] in email_tokens  # the same token as in the prompts
    assert events[0]["chain_id"].startswith("chain <PHONE_NUMBER:")
    chat_id = events[0]["chat_id"]
    assert [e["id"] for e in project.events(chat_id=chat_id)]  # the dashboard can group by it


def _hostile_events() -> list[dict]:
    """Events another SDK could send, shaped to trip the redactor up."""
    base = foreign_event("x")
    deep = "[" * 5000 + "]" * 5000
    shapes = [
        {"output_text": deep},  # JSON too deep to parse
        {"output_text": "Dr. " * 20000},  # tens of thousands of spans
        {"output_text": "+44 20 7946 0958 " * 3000},
        {"chat_id": "ana@example.com," * 32},  # grows past the schema's 512 when redacted
        {"chain_id": "Priya Raman " * 42},
        {"attributes": {EMAIL: "key is personal data", "n": 1, "nested": {"name": "Mei Chen"}}},
        {"template_params": {"args": '{"to": "' + EMAIL + '"}', "bad": '{"to": '}},
        {"error": {"type": "x", "message": f"call {PHONE}", "status_code": 500}},
        {
            "request": {
                "messages": [{"role": "user", "name": "Lars Nowak", "content": "\x00\ud7ff"}]
            }
        },
    ]
    return [
        {**base, "id": f"00000000-0000-4000-8000-{i:012d}", **shape}
        for i, shape in enumerate(shapes)
    ]


def test_hostile_events_are_redacted_by_the_server_not_failed(tmp_path: Path) -> None:
    server = start_server(tmp_path, {"LLMTAP_REDACT_FIELDS": json.dumps({"*": "all"})})
    try:
        key = server.new_key("hostile")
        events = _hostile_events()
        posted = server.post("/api/v1/events", key, json={"events": events})
        assert posted.status_code == 200, posted.text
        stored = [server.get(f"/api/v1/events/{e['id']}", key).json() for e in events]
    finally:
        stderr = stop_server(server)
    assert "Traceback" not in stderr
    whole = json.dumps(stored, ensure_ascii=False)
    for value in (EMAIL, "7946 0958", "Raman", "Mei Chen", "Nowak"):
        assert value not in whole
    assert all(len(e["chat_id"] or "") <= 512 for e in stored)
    assert stored[0]["output_text"] == "[" * 5000 + "]" * 5000  # nothing in it, left as it was
