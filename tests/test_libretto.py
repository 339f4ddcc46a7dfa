"""``llmtap.libretto``: the examples of the Libretto client's README (seed 000), run with only
the import changed (``libretto_openai`` -> ``llmtap.libretto``) and the placeholders filled in
(keys; ``...`` in the argument lists), then checked through the real server's query API.

Two slips of the seed's own code are corrected where they would stop Python before llmtap is
reached: its TemplateText example imports TemplateChat but not TemplateText, and its feedback
example writes ``!==``.
"""

from __future__ import annotations

import asyncio
import uuid

import openai
import pytest

from .conftest import Project


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, seed_env: Project) -> Project:
    """The seed's environment; the Libretto key is given in the code, not the environment."""
    monkeypatch.delenv("LIBRETTO_API_KEY", raising=False)
    return seed_env


def only_event(project: Project, **filters: str) -> dict:
    events = project.events(**filters)
    assert len(events) == 1, events
    return project.event(events[0]["id"])


def test_readme_template_chat(env: Project) -> None:
    from llmtap.libretto import (
        Client,
        LibrettoConfig,
        LibrettoCreateParams,
        TemplateChat,
    )

    client = Client(
        api_key="<OpenAI API Key>",
        libretto=LibrettoConfig(
            api_key=env.key,  # "<Libretto API Key>": a llmtap key
        ),
    )

    completion = client.chat.completions.create(
        # Standard OpenAI parameters
        model="gpt-4o-mini",
        messages=TemplateChat(
            [{"role": "user", "content": "Show me an emoji that matches the sport: {sport}"}],
            {"sport": "soccer"},
        ),
        libretto=LibrettoCreateParams(
            prompt_template_name="sport-emoji",
        ),
    )

    assert completion.choices[0].message.content.endswith("matches the sport: soccer")
    key = completion.model_extra["libretto_feedback_key"]
    client.flush()
    event = only_event(env)
    assert event["prompt_template_name"] == "sport-emoji"
    assert event["template_chat"] == [
        {"role": "user", "content": "Show me an emoji that matches the sport: {sport}"}
    ]
    assert event["template_params"] == {"sport": "soccer"}
    assert event["feedback_key"] == key
    assert event["request"]["messages"][0]["content"].endswith("sport: soccer")


def test_readme_template_text(env: Project) -> None:
    from llmtap.libretto import (
        Client,
        LibrettoConfig,
        LibrettoCreateParams,
        TemplateChat,  # noqa: F401
        TemplateText,  # missing from the seed's import
    )

    client = Client(
        api_key="<OpenAI API Key>",
        libretto=LibrettoConfig(
            api_key=env.key,
        ),
    )

    completion = client.completions.create(
        # Standard OpenAI parameters
        model="text-davinci-003",
        prompt=TemplateText(
            "Show me an emoji that matches the sport: {sport}",
            {"sport": "soccer"},
        ),
        libretto=LibrettoCreateParams(
            prompt_template_name="sport-emoji",
        ),
    )

    assert completion.choices[0].text == "echo: Show me an emoji that matches the sport: soccer"
    client.flush()
    event = only_event(env)
    assert event["api"] == "completion"
    assert event["template_text"] == "Show me an emoji that matches the sport: {sport}"
    assert event["template_params"] == {"sport": "soccer"}
    assert event["feedback_key"] == completion.model_extra["libretto_feedback_key"]


def test_readme_manual_parameters_v0_style(env: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """The seed's one openai 0.x example, through ``llmtap.monitoring``'s v0 API."""
    monkeypatch.setenv("LLMTAP_API_KEY", env.key)
    from llmtap.libretto import LibrettoCreateParams
    from llmtap.monitoring import init_monitor, openai

    monitor = init_monitor()

    completion = openai.ChatCompletion.create(
        model="gpt-4o-mini",
        # Note we are passing the raw messages object here
        messages=[{"role": "user", "content": "Show me an emoji that matches the sport: soccer"}],
        libretto=LibrettoCreateParams(
            # call configuration
            prompt_template_name="sport-emoji",
            # Here the prompt and parameters are passed seperately
            template_params={"sport": "soccer"},
            template_chat=[
                {"role": "user", "content": "Show me an emoji that matches the sport: {sport}"}
            ],
        ),
    )

    assert completion["choices"][0]["message"]["content"].endswith("sport: soccer")
    monitor.flush()
    event = only_event(env)
    assert event["prompt_template_name"] == "sport-emoji"
    assert event["template_params"] == {"sport": "soccer"}
    assert event["template_chat"][0]["content"].endswith("{sport}")


def test_readme_create_parameters(env: Project) -> None:
    """The examples of "Additional Create Call Parameters", one call each."""
    import uuid as uuid_module

    from llmtap.libretto import Client, LibrettoConfig, LibrettoCreateParams

    client = Client(libretto=LibrettoConfig(api_key=env.key, prompt_template_name="welcome"))

    completion = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Hi Llmtap, I'm Ana!"}],
        libretto=LibrettoCreateParams(
            template_chat=[
                {"role": "ai", "content": "Hello, I'm {system_name}!"},
                {"role": "user", "content": "Hi {system_name}, I'm {user_name}!"},
            ],
        ),
    )
    completion = client.completions.create(
        model="gpt-3.5-turbo-instruct",
        prompt="Please welcome the user to Awesome Comics Incorporated!",
        libretto=LibrettoCreateParams(
            template_text="Please welcome the user to {system_name}!",
            template_params={"system_name": "Awesome Comics Incorporated"},
        ),
    )
    event_id = uuid_module.uuid4()
    completion = client.completions.create(
        model="gpt-3.5-turbo-instruct",
        prompt="hello",
        libretto=LibrettoCreateParams(
            event_id=event_id,
        ),
    )
    parent_id = uuid.uuid4()
    for _ in range(2):
        completion = client.completions.create(
            model="gpt-3.5-turbo-instruct",
            prompt="step",
            libretto=LibrettoCreateParams(
                chain_id=parent_id,
            ),
        )
    assert completion.choices[0].text == "echo: step"
    client.flush()

    events = env.events()
    assert len(events) == 5
    assert {e["prompt_template_name"] for e in events} == {"welcome"}  # the config's default
    chat = only_event(env, model="gpt-4o-mini")
    assert chat["template_chat"][0] == {"role": "ai", "content": "Hello, I'm {system_name}!"}
    text = next(e for e in events if e.get("template_text"))
    assert text["template_params"] == {"system_name": "Awesome Comics Incorporated"}
    assert env.event(str(event_id))["request"]["prompt"] == "hello"
    assert len(env.events(chain_id=str(parent_id))) == 2


def test_readme_send_feedback(env: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIBRETTO_API_KEY", env.key)  # Client() with no key reads it

    def ask_user_for_better_response(text: str) -> str:
        return "⚽"

    from llmtap.libretto import Client

    client = Client()
    completion = client.completions.create(
        model="gpt-3.5-turbo-instruct",
        prompt="Suggest a title",
        libretto={"prompt_template_name": "title"},  # a partial dict
    )

    # Maybe the user didn't like the answer, so ask them for a better one
    better_response = ask_user_for_better_response(completion.choices[0].text)

    # If the user provided a better answer, send feedback to Libretto
    if better_response != completion.choices[0].text:
        # feedback key is automatically injected into OpenAI response object as an extra field
        feedback_key = completion.model_extra.get("libretto_feedback_key")
        client.send_feedback(
            feedback_key=feedback_key,
            # Better answer from the user
            better_response=better_response,
            # Rating of existing answer, from 0 to 1
            rating=0.2,
        )

    client.flush()
    event = only_event(env)
    assert [(f["rating"], f["better_response"]) for f in event["feedback"]] == [(0.2, "⚽")]


def test_unnamed_calls_pass_through_unrecorded_by_default(env: Project) -> None:
    from llmtap.libretto import Client, LibrettoConfig

    client = Client(libretto=LibrettoConfig(api_key=env.key))
    completion = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "no name"}]
    )
    assert completion.choices[0].message.content == "echo: no name"
    assert "libretto_feedback_key" not in (completion.model_extra or {})
    client.send_feedback(feedback_key=None, rating=1.0)  # the seed's .get() gives None: no-op

    everything = Client(libretto=LibrettoConfig(api_key=env.key, allow_unnamed_prompts=True))
    everything.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "recorded"}]
    )
    client.flush()
    everything.flush()
    event = only_event(env)
    assert event["request"]["messages"][0]["content"] == "recorded"
    assert event["prompt_template_name"].startswith("unnamed-chat-")


def test_failed_calls_and_new_arguments_are_recorded(env: Project) -> None:
    from llmtap.libretto import Client, LibrettoConfig

    client = Client(max_retries=0, libretto=LibrettoConfig(api_key=env.key, chat_id="c-9"))
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "[[status:429]]"}],
            reasoning_effort="low",
            libretto={"prompt_template_name": "fails"},
        )
    client.flush()
    event = only_event(env)
    assert event["status"] == "error"
    assert event["error"]["status_code"] == 429
    assert event["request"]["reasoning_effort"] == "low"
    assert event["chat_id"] == "c-9"


def test_async_client(env: Project) -> None:
    from llmtap.libretto import AsyncClient, LibrettoConfig, LibrettoCreateParams, TemplateString

    async def main() -> str:
        client = AsyncClient(libretto=LibrettoConfig(api_key=env.key))
        completion = await client.completions.create(
            model="gpt-3.5-turbo-instruct",
            prompt=TemplateString("Tell me about {topic}", {"topic": "async"}),
            libretto=LibrettoCreateParams(prompt_template_name="async-text"),
        )
        await client.close()
        return str(completion.model_extra["libretto_feedback_key"])

    key = asyncio.run(main())
    event = only_event(env)
    assert event["feedback_key"] == key
    assert event["template_text"] == "Tell me about {topic}"


def test_streaming_is_passed_through_and_recorded(env: Project) -> None:
    from llmtap.libretto import Client, LibrettoConfig, LibrettoCreateParams

    client = Client(libretto=LibrettoConfig(api_key=env.key))
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "stream me please"}],
        stream=True,
        stream_options={"include_usage": True},
        libretto=LibrettoCreateParams(prompt_template_name="streamed"),
    )
    assert isinstance(stream, openai.Stream)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "echo: stream me please"
    client.flush()
    event = only_event(env)
    assert event["output_text"] == text
    assert event["usage"]["output_tokens"] > 0


def test_libretto_config_repr_masks_the_key() -> None:
    from llmtap.libretto import LibrettoConfig

    config = LibrettoConfig(api_key="lt_0123456789abcdefghijklmnop", chat_id="c-1")
    assert "lt_0123456789abcdefghijklmnop" not in repr(config)
    assert "api_key='lt_012…'" in repr(config) and "chat_id='c-1'" in repr(config)


def test_a_chat_loop_s_history_is_recorded_as_each_call_sent_it(
    env: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chat loop appends to its history after each call; each event keeps the history (and
    the attributes) of its own call, not what the lists became before the exporter read them."""
    from llmtap.libretto import Client, LibrettoConfig, LibrettoCreateParams, TemplateChat

    monkeypatch.setenv("LLMTAP_FLUSH_INTERVAL", "30")  # built after the loop, as a busy app's
    client = Client(libretto=LibrettoConfig(api_key=env.key))
    template = [
        {"role": "system", "content": "You are {name}."},
        {"role": "chat_history", "content": "{history}"},
    ]
    history: list[dict[str, str]] = []
    attributes = {"turn": {"n": 0}}
    for n, question in enumerate(["first", "second", "third"]):
        history.append({"role": "user", "content": question})
        attributes["turn"]["n"] = n
        answer = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=TemplateChat(template, {"name": "Bot", "history": history}),
            libretto=LibrettoCreateParams(prompt_template_name="loop", attributes=attributes),
        )
        history.append({"role": "assistant", "content": answer.choices[0].message.content})
    client.flush()
    events = sorted((env.event(e["id"]) for e in env.events()), key=lambda e: e["started_at"])
    assert [len(e["template_params"]["history"]) for e in events] == [1, 3, 5]
    assert [e["template_params"]["history"][-1]["content"] for e in events] == [
        "first",
        "second",
        "third",
    ]
    assert [e["attributes"]["turn"] for e in events] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert all("libretto_feedback_key" not in e["response"] for e in events)


def test_templates_fill_as_str_format_does(env: Project) -> None:
    """Libretto's templates are ``str.format`` templates: ``{{`` is a brace and a format spec
    formats. A brace that is no placeholder (JSON in the prompt) still stays as written."""
    from llmtap.libretto import TemplateChat, TemplateText

    params = {"sport": "golf", "price": 3.14159}
    text = 'Reply as JSON like {{"emoji": "..."}} for {sport}, {price:.2f}'
    assert TemplateText(text, params) == text.format_map(params)
    chat = TemplateChat([{"role": "user", "content": "Use {{braces}} for {sport}"}], params)
    assert chat[0]["content"] == "Use {braces} for golf"
    assert TemplateText('{"emoji": "x"} for {sport} {missing}', params) == (
        '{"emoji": "x"} for golf {missing}'
    )
    assert TemplateText("{sport:>99999999}", params) == "{sport:>99999999}"  # no gigabyte


def test_redact_pii_unset_follows_the_environment(
    env: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmtap.libretto import Client, LibrettoConfig

    monkeypatch.setenv("LLMTAP_REDACT_PII", "1")
    assert Client(libretto=LibrettoConfig(api_key=env.key))._llmtap.settings.redact_pii
    told = Client(libretto=LibrettoConfig(api_key=env.key, redact_pii=False))
    assert not told._llmtap.settings.redact_pii


def test_a_rating_and_a_better_response_sent_apart_make_one_case(env: Project) -> None:
    """Feedback may send a rating or a better response alone: a case made from feedback
    expects the event's newest of each, not only what its newest feedback holds."""
    from llmtap.libretto import Client, LibrettoConfig

    client = Client(libretto=LibrettoConfig(api_key=env.key))
    completion = client.completions.create(
        model="gpt-3.5-turbo-instruct",
        prompt="Suggest a title",
        libretto={"prompt_template_name": "t"},
    )
    key = completion.model_extra["libretto_feedback_key"]
    client.send_feedback(feedback_key=key, better_response="A much better title")
    client.flush()
    client.send_feedback(feedback_key=key, rating=0.2)
    client.flush()
    made = env.server.post(
        "/api/v1/testsets", env.key, json={"name": "apart", "source": "feedback"}
    )
    assert made.status_code == 201, made.text
    testset = env.server.get(f"/api/v1/testsets/{made.json()['testset']['id']}", env.key).json()
    (case,) = testset["cases"]
    assert (case["rating"], case["expected"]) == (0.2, "A much better title")
