"""The SDK records chat and completion calls: everything the caller passed and got back,
checked through the real server's query API."""

from __future__ import annotations

import uuid
from decimal import Decimal
from fractions import Fraction

import openai
import pytest

import llmtap
from llmtap.fake_provider import FakeProvider

from .conftest import Project, tap_config


def only_event(project: Project, **filters: str) -> dict:
    events = project.events(**filters)
    assert len(events) == 1, events
    return project.event(events[0]["id"])


def test_chat_call_is_recorded_whole(
    client: llmtap.Client, project: Project, provider: FakeProvider
) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=llmtap.TemplateChat(
            [
                {"role": "system", "content": "You pick emoji."},
                {"role": "user", "content": "Show me an emoji for {sport}"},
            ],
            {"sport": "soccer"},
        ),
        temperature=0.3,
        seed=7,
        llmtap=llmtap.CallParams(
            prompt_template_name="sport-emoji", chat_id="c1", attributes={"team": "blue"}
        ),
    )
    assert completion.choices[0].message.content == "echo: Show me an emoji for soccer"
    sent = provider.requests[-1]["body"]
    assert sent["messages"][1]["content"] == "Show me an emoji for soccer"
    assert "llmtap" not in sent
    client.flush()

    event = only_event(project)
    assert event["api"] == "chat"
    assert event["status"] == "ok"
    assert event["model"] == "gpt-4o-mini"
    assert event["request"]["temperature"] == 0.3
    assert event["request"]["seed"] == 7
    assert event["request"]["messages"][1]["content"] == "Show me an emoji for soccer"
    assert event["response"]["id"] == completion.id
    assert "llmtap_feedback_key" not in event["response"]
    assert event["output_text"] == "echo: Show me an emoji for soccer"
    assert event["prompt_template_name"] == "sport-emoji"
    assert event["template_chat"][1]["content"] == "Show me an emoji for {sport}"
    assert event["template_params"] == {"sport": "soccer"}
    assert event["template_revision"]
    assert event["chat_id"] == "c1"
    assert event["attributes"] == {"team": "blue"}
    assert event["usage"]["input_tokens"] == completion.usage.prompt_tokens
    assert event["usage"]["output_tokens"] == completion.usage.completion_tokens
    assert event["usage"]["total_tokens"] == completion.usage.total_tokens
    assert 0 < event["latency_ms"] < 10_000
    assert event["feedback_key"] == completion.model_extra["llmtap_feedback_key"]
    assert event["sdk"]["name"] == "llmtap-python"
    assert event["environment"] == "dev"
    assert event["feedback"] == []


def test_completion_with_template_text(client: llmtap.Client, project: Project) -> None:
    completion = client.completions.create(
        model="gpt-3.5-turbo-instruct",
        prompt=llmtap.TemplateText("Welcome the user to {system_name}!", {"system_name": "ACI"}),
        max_tokens=20,
        llmtap={"prompt_template_name": "welcome"},
    )
    assert completion.choices[0].text == "echo: Welcome the user to ACI!"
    client.flush()
    event = only_event(project)
    assert event["api"] == "completion"
    assert event["request"]["prompt"] == "Welcome the user to ACI!"
    assert event["request"]["max_tokens"] == 20
    assert event["template_text"] == "Welcome the user to {system_name}!"
    assert event["template_params"] == {"system_name": "ACI"}
    assert event["output_text"] == "echo: Welcome the user to ACI!"


def test_arguments_pass_through_untouched(
    client: llmtap.Client, project: Project, provider: FakeProvider
) -> None:
    client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "hi"}],
        metadata={"k": "v"},
        extra_body={"brand_new_parameter": {"nested": [1, 2]}},
        extra_headers={"x-secret": "do-not-record"},
    )
    sent = provider.requests[-1]["body"]
    assert sent["brand_new_parameter"] == {"nested": [1, 2]}
    assert sent["metadata"] == {"k": "v"}
    client.flush()
    event = only_event(project)
    assert event["request"]["extra_body"] == {"brand_new_parameter": {"nested": [1, 2]}}
    assert "extra_headers" not in event["request"]


def test_explicit_template_and_ids(client: llmtap.Client, project: Project) -> None:
    event_id, chain_id, parent = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "Show me an emoji for soccer"}],
        llmtap=llmtap.CallParams(
            prompt_template_name="sport-emoji",
            template_params={"sport": "soccer"},
            template_chat=[{"role": "user", "content": "Show me an emoji for {sport}"}],
            event_id=event_id,
            chain_id=chain_id,
            parent_event_id=parent,
            feedback_key="my-key",
        ),
    )
    client.flush()
    event = project.event(str(event_id))
    assert event["template_chat"] == [{"role": "user", "content": "Show me an emoji for {sport}"}]
    assert event["template_params"] == {"sport": "soccer"}
    assert event["chain_id"] == str(chain_id)
    assert event["parent_event_id"] == str(parent)
    assert event["feedback_key"] == "my-key"


def test_chat_history_role_expands(
    client: llmtap.Client, project: Project, provider: FakeProvider
) -> None:
    history = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    messages = llmtap.TemplateChat(
        [
            {"role": "system", "content": "You are {name}."},
            {"role": "chat_history", "content": "{history}"},
            {"role": "user", "content": "{question}"},
        ],
        {"name": "Tapbot", "history": history, "question": "Who are you?"},
    )
    assert [m["content"] for m in messages] == ["You are Tapbot.", "Hi", "Hello!", "Who are you?"]
    client.chat.completions.create(
        model="m", messages=messages, llmtap={"prompt_template_name": "bot"}
    )
    assert len(provider.requests[-1]["body"]["messages"]) == 4
    client.flush()
    event = only_event(project)
    assert event["template_chat"][1] == {"role": "chat_history", "content": "{history}"}
    assert event["template_params"]["history"] == history


def test_unnamed_prompts_get_a_stable_name(client: llmtap.Client, project: Project) -> None:
    template = [{"role": "user", "content": "Capital of {country}?"}]
    for country in ("France", "Peru"):
        client.chat.completions.create(
            model="m", messages=llmtap.TemplateChat(template, {"country": country})
        )
    client.chat.completions.create(
        model="m", messages=llmtap.TemplateChat([{"role": "user", "content": "{x}?"}], {"x": 1})
    )
    client.flush()
    names = [e["prompt_template_name"] for e in project.events()]
    assert names[1] == names[2] != names[0]
    assert all(name.startswith("unnamed-chat-") for name in names)


def test_config_default_name_and_unnamed_off(provider: FakeProvider, project: Project) -> None:
    strict = llmtap.Client(
        api_key="sk",
        base_url=provider.base_url,
        llmtap=tap_config(project, allow_unnamed_prompts=False),
    )
    strict.chat.completions.create(model="m", messages=[{"role": "user", "content": "skip me"}])
    strict.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "keep"}],
        llmtap={"prompt_template_name": "kept"},
    )
    named = llmtap.Client(
        api_key="sk",
        base_url=provider.base_url,
        llmtap=llmtap.Config(
            **tap_config(project, allow_unnamed_prompts=False), prompt_template_name="default-name"
        ),
    )
    named.chat.completions.create(model="m", messages=[{"role": "user", "content": "named"}])
    strict.flush()
    named.flush()
    assert sorted(e["prompt_template_name"] for e in project.events()) == ["default-name", "kept"]


def test_config_attributes_merge_and_chat_id(provider: FakeProvider, project: Project) -> None:
    c = llmtap.Client(
        api_key="sk",
        base_url=provider.base_url,
        llmtap=tap_config(project, attributes={"app": "x", "tier": "free"}, chat_id="default-chat"),
    )
    c.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "a"}],
        llmtap={"attributes": {"tier": "pro"}},
    )
    c.flush()
    event = only_event(project)
    assert event["attributes"] == {"app": "x", "tier": "pro"}
    assert event["chat_id"] == "default-chat"


def test_errors_recorded_and_reraised_unchanged(
    client: llmtap.Client, project: Project, provider: FakeProvider
) -> None:
    plain = openai.OpenAI(api_key="sk", base_url=provider.base_url, max_retries=0)
    messages = [{"role": "user", "content": "[[status:429]]"}]
    with pytest.raises(openai.RateLimitError) as expected:
        plain.chat.completions.create(model="m", messages=messages)
    with pytest.raises(openai.RateLimitError) as got:
        client.chat.completions.create(model="m", messages=messages)
    assert str(got.value) == str(expected.value)
    assert got.value.status_code == 429
    client.flush()
    event = only_event(project, status="error")
    assert event["error"]["type"] == "RateLimitError"
    assert event["error"]["status_code"] == 429
    assert "fake provider error" in event["error"]["message"]
    assert event["response"] is None
    assert event["latency_ms"] > 0


def test_connection_error_recorded(project: Project) -> None:
    from .conftest import free_port

    c = llmtap.Client(
        api_key="sk",
        base_url=f"http://127.0.0.1:{free_port()}/v1",
        max_retries=0,
        llmtap=tap_config(project),
    )
    with pytest.raises(openai.APIConnectionError):
        c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    c.flush()
    event = only_event(project)
    assert event["status"] == "error"
    assert event["error"]["type"] == "APIConnectionError"
    assert event["error"]["status_code"] is None


def test_feedback_reaches_the_event(client: llmtap.Client, project: Project) -> None:
    completion = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "emoji for soccer"}]
    )
    key = completion.model_extra["llmtap_feedback_key"]
    client.send_feedback(feedback_key=key, rating=0.2, better_response="⚽")
    client.flush()
    event = only_event(project)
    assert [(f["rating"], f["better_response"]) for f in event["feedback"]] == [(0.2, "⚽")]
    with pytest.raises(ValueError):
        client.send_feedback(feedback_key=key)
    for wrong in (3, True, float("nan"), "0.5"):
        with pytest.raises(ValueError):
            client.send_feedback(feedback_key=key, rating=wrong)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        client.send_feedback(feedback_key=key, better_response=["no"])  # type: ignore[arg-type]


def test_feedback_of_any_real_rating_and_any_text_arrives_without_losing_its_batch(
    client: llmtap.Client, project: Project
) -> None:
    """A Fraction or a Decimal (or a numpy float) is sent as the number it is (JSON had
    carried its repr or a string, and the server refused it); half a surrogate pair in a
    better response is replaced, and the events queued with it are delivered (the whole
    batch had been lost)."""
    first = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "a"}])
    key = first.model_extra["llmtap_feedback_key"]
    client.send_feedback(feedback_key=key, rating=Fraction(1, 4))
    client.send_feedback(feedback_key=key, rating=Decimal("0.5"))  # type: ignore[arg-type]
    client.send_feedback(feedback_key=key, better_response="bad \ud800 text")
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": "b"}])
    assert client.flush()
    stats = client.stats()
    assert stats.delivered == 5 and stats.failed == 0, stats
    assert len(project.events()) == 2
    feedback = project.event(only_event(project, q="a")["id"])["feedback"]
    assert [f["rating"] for f in feedback] == [0.25, 0.5, None]
    assert feedback[2]["better_response"] == "bad ? text"


def test_with_options_and_copy_keep_the_config(client: llmtap.Client, project: Project) -> None:
    faster = client.with_options(timeout=5)
    assert isinstance(faster, llmtap.Client)
    faster.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "a"}],
        llmtap={"prompt_template_name": "via-with-options"},
    )
    renamed = client.copy(llmtap={"prompt_template_name": "via-copy"})
    renamed.chat.completions.create(model="m", messages=[{"role": "user", "content": "b"}])
    faster.flush()
    names = sorted(e["prompt_template_name"] for e in project.events())
    assert names == ["via-copy", "via-with-options"]
    assert client._llmtap.config.prompt_template_name is None


def test_disabled_records_nothing(
    provider: FakeProvider, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMTAP_ENABLED", "0")
    c = llmtap.Client(api_key="sk", base_url=provider.base_url, llmtap=tap_config(project))
    out = c.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "a"}], llmtap={"prompt_template_name": "x"}
    )
    assert out.choices[0].message.content == "echo: a"
    # The documented read of the key still works: None, and feedback with it sends nothing.
    assert out.model_extra["llmtap_feedback_key"] is None
    c.send_feedback(feedback_key=out.model_extra["llmtap_feedback_key"], rating=0.5)
    c.flush()
    assert project.events() == []
    assert c.stats().queued == 0


def test_caller_mutating_messages_after_the_call(client: llmtap.Client, project: Project) -> None:
    messages = [{"role": "user", "content": "first"}]
    client.chat.completions.create(model="m", messages=messages)
    messages.append({"role": "assistant", "content": "later"})
    client.flush()
    assert len(only_event(project)["request"]["messages"]) == 1


async def _async_call(provider: FakeProvider, project: Project) -> str:
    async with llmtap.AsyncClient(
        api_key="sk", base_url=provider.base_url, llmtap=tap_config(project)
    ) as c:
        out = await c.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "async hi"}],
            llmtap={"prompt_template_name": "async"},
        )
        return out.model_extra["llmtap_feedback_key"]


def test_async_client_records(provider: FakeProvider, project: Project) -> None:
    import asyncio

    key = asyncio.run(_async_call(provider, project))
    event = only_event(project)
    assert event["prompt_template_name"] == "async"
    assert event["feedback_key"] == key
    assert event["output_text"] == "echo: async hi"


def test_sample_rate_records_about_that_share_and_leaves_random_alone(
    provider: FakeProvider, project: Project
) -> None:
    """Half the calls recorded (binomial: 200 calls land within 60 to 140 but for odds of about
    1e-8), every call answered; and the host program's seeded random sequence is not moved."""
    import random

    client = llmtap.Client(
        api_key="sk", base_url=provider.base_url, llmtap=tap_config(project, sample_rate=0.5)
    )
    random.seed(1234)
    state = random.getstate()
    try:
        for _ in range(200):
            answer = client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
            assert answer.choices[0].message.content
        assert random.getstate() == state
        client.flush()
    finally:
        client.close()
    recorded = len(project.events(limit=1000))
    assert 60 <= recorded <= 140, recorded
    assert client.stats().queued == recorded


def test_a_usage_estimate_that_fails_leaves_the_call_recorded(
    client: llmtap.Client, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Estimating usage imports a tokenizer, which at interpreter exit raises (it registers
    an atexit hook): the event goes out without an estimate, not at all lost."""
    from llmtap.sdk import _record

    def refuse(*args: object) -> None:
        raise RuntimeError("can't register atexit after shutdown")

    monkeypatch.setattr(_record, "estimate_usage", refuse)
    client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "no usage [[nousage]]"}]
    )
    client.flush()
    (event,) = project.events()
    assert event["output_text"] and not (event.get("usage") or {}).get("estimated")


def test_a_stream_taken_up_again_with_llmtap_params_reaches_openai_unchanged(
    client: llmtap.Client,
) -> None:
    """``responses.stream(response_id=...)`` reads through ``retrieve``, which llmtap does not
    record: ``llmtap=`` is dropped, not sent to the provider as a header dict (a TypeError)."""
    # The fake provider knows no stored response: openai's own error, not llmtap's.
    with (
        pytest.raises(openai.APIStatusError),
        client.responses.stream(
            response_id="resp_unknown", llmtap={"prompt_template_name": "t"}
        ) as stream,
    ):
        for _ in stream:
            pass


@pytest.mark.parametrize(
    ("setting", "value", "words"),
    [("batch_size", 0, "batch_size"), ("flush_interval", 0, "flush_interval")],
)
def test_delivery_settings_that_would_spin_are_refused_at_start(
    setting: str, value: float, words: str
) -> None:
    """A batch of no events, or no pause between flushes, would keep the exporter's threads
    busy for ever: the client refuses them when it is made, saying which."""
    with pytest.raises(ValueError, match=words):
        llmtap.Client(api_key="sk", llmtap={setting: value})
