"""The sync and async clients record the same methods, the same way (one recorder)."""

from __future__ import annotations

import asyncio
import inspect

import pytest

import llmtap
from llmtap.fake_provider import AZURE_MODEL, FakeProvider

from ._clients import make_caller
from .conftest import Project

RECORDED = [
    "chat.completions.create",
    "chat.completions.parse",
    "beta.chat.completions.parse",
    "beta.responses.create",
    "completions.create",
    "responses.create",
    "responses.parse",
    "embeddings.create",
]


def _resolve(client: object, path: str) -> object:
    for name in path.split("."):
        client = getattr(client, name)
    return client


def test_every_client_wraps_the_same_methods() -> None:
    clients = [
        llmtap.Client(api_key="k", base_url="http://127.0.0.1:9/v1"),
        llmtap.AsyncClient(api_key="k", base_url="http://127.0.0.1:9/v1"),
        llmtap.AzureClient(api_key="k", azure_endpoint="http://127.0.0.1:9", api_version="x"),
        llmtap.AsyncAzureClient(api_key="k", azure_endpoint="http://127.0.0.1:9", api_version="x"),
    ]
    for client in clients:
        is_async = isinstance(client, (llmtap.AsyncClient, llmtap.AsyncAzureClient))
        for path in RECORDED:
            method = _resolve(client, path)
            assert getattr(method, "__wrapped__", None) is not None, (type(client), path)
            assert inspect.iscoroutinefunction(method) == is_async, (type(client), path)
            raw = _resolve(client, path.replace(".create", ".with_raw_response.create"))
            assert raw is not None
    for client in clients:
        if isinstance(client, (llmtap.AsyncClient, llmtap.AsyncAzureClient)):
            asyncio.run(client.close())
        else:
            client.close()


def test_sync_and_async_record_the_same_events(provider: FakeProvider, project: Project) -> None:
    recorded = {}
    for kind in ("sync", "async"):
        caller = make_caller(kind, provider, project)
        try:
            marker = {"attributes": {"kind": kind}}
            caller.call(
                "chat.completions.create",
                model="m",
                messages=[{"role": "user", "content": "p"}],
                llmtap=marker,
            )
            caller.read(
                caller.call(
                    "chat.completions.create",
                    model="m",
                    messages=[{"role": "user", "content": "s"}],
                    stream=True,
                    llmtap=marker,
                )
            )
            caller.call("responses.create", model="m", input="r", llmtap=marker)
            caller.call("embeddings.create", model="e", input="e", llmtap=marker)
            caller.flush()
        finally:
            caller.shutdown()
        events = [project.event(e["id"]) for e in project.events(**{"attributes.kind": kind})]
        recorded[kind] = sorted(
            (
                e["api"],
                e["status"],
                e["output_text"],
                e["usage"]["total_tokens"],
                e["request"].get("stream"),
            )
            for e in events
        )
    assert len(recorded["sync"]) == 4
    assert recorded["sync"] == recorded["async"]


def azure_client(project: Project, provider: FakeProvider, api_version: str) -> llmtap.AzureClient:
    return llmtap.AzureClient(
        api_key="k",
        azure_endpoint=f"http://127.0.0.1:{provider.port}",
        api_version=api_version,
        azure_deployment="dep",
        max_retries=0,
        llmtap={"api_key": project.key, "url": project.server.url},
    )


def test_azure_client_records(project: Project, provider: FakeProvider) -> None:
    client = azure_client(project, provider, "2024-10-21")
    try:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "az"}])
        client.flush()
    finally:
        client.close()
    (event,) = project.events()
    assert event["provider"] == "azure"


def test_an_azure_stream_is_sent_as_the_caller_wrote_it(
    project: Project, provider: FakeProvider
) -> None:
    """Azure's API versions before 2024-09 refuse ``stream_options``: llmtap does not add it
    there (the usage is estimated instead), so the caller's stream is never refused for it."""
    client = azure_client(project, provider, "2024-06-01")
    try:
        stream = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "az one two"}], stream=True
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        client.flush()
    finally:
        client.close()
    assert text and "stream_options" not in provider.requests[-1]["body"]
    (event,) = project.events()
    assert event["provider"] == "azure" and event["usage"]["estimated"] is True


def test_an_azure_stream_is_recorded_under_its_model_and_priced(
    project: Project, provider: FakeProvider
) -> None:
    """Azure's stream opens with its prompt filter's chunk, whose model is blank: the event
    is the model's the later chunks name (as the call not streamed is), so it is priced, not
    filed under the deployment's name."""
    client = azure_client(project, provider, "2024-10-21")
    try:
        for stream in (False, True):
            answer = client.chat.completions.create(
                model="dep", messages=[{"role": "user", "content": "az"}], stream=stream
            )
            if stream:
                models = [chunk.model for chunk in answer]  # read to its end
                assert models[0] == "" and models[-1] == AZURE_MODEL  # the filter's chunk first
        client.flush()
    finally:
        client.close()
    events = [project.event(e["id"]) for e in project.events()]
    assert [e["model"] for e in events] == [AZURE_MODEL, AZURE_MODEL]
    assert all(e["cost_usd"] and e["cost_usd"] > 0 for e in events)
    assert events[0]["request"]["stream"] is True  # newest first


def test_a_patch_of_openai_s_class_applies_as_it_does_to_openai_s_client(
    client: llmtap.Client, project: Project
) -> None:
    """A test's ``mock.patch.object(Completions, "create")`` (or an instrumentation patching
    the class) reaches a client used before the patch, and ends with the patch: the method
    is looked up on the class at each call, as openai does. The patched calls are recorded."""
    from unittest import mock

    from openai.resources.chat.completions import Completions

    ask = {"model": "m", "messages": [{"role": "user", "content": "patched?"}]}
    assert client.chat.completions.create(**ask).choices[0].message.content == "echo: patched?"
    real = Completions.create

    def canned(self: Completions, **kwargs: object) -> object:
        answer = real(self, **kwargs)
        answer.choices[0].message.content = "canned"
        return answer

    with mock.patch.object(Completions, "create", canned):
        assert client.chat.completions.create(**ask).choices[0].message.content == "canned"
    assert client.chat.completions.create(**ask).choices[0].message.content == "echo: patched?"
    client.flush()
    outputs = sorted(e["output_text"] for e in (project.event(x["id"]) for x in project.events()))
    assert outputs == ["canned", "echo: patched?", "echo: patched?"]


def test_the_beta_namespace_s_calls_are_recorded(client: llmtap.Client, project: Project) -> None:
    import pydantic

    class Answer(pydantic.BaseModel):
        text: str

    ask = [{"role": "user", "content": 'reply [[reply:{"text": "hi"}]]'}]
    parsed = client.beta.chat.completions.parse(model="m", messages=ask, response_format=Answer)
    assert parsed.choices[0].message.parsed == Answer(text="hi")
    client.flush()
    (listed,) = project.events()
    assert project.event(listed["id"])["output_text"] == '{"text": "hi"}'


def test_messages_given_as_a_generator_are_sent_and_recorded(
    client: llmtap.Client, project: Project
) -> None:
    history = [{"role": "user", "content": "from a generator"}]
    answer = client.chat.completions.create(model="m", messages=(m for m in history))
    assert answer.choices[0].message.content == "echo: from a generator"
    client.flush()
    (listed,) = project.events()
    assert project.event(listed["id"])["request"]["messages"] == history


def test_a_raw_structured_answer_that_does_not_parse_is_recorded_as_the_call_s_error(
    client: llmtap.Client, project: Project
) -> None:
    """Through ``with_raw_response``, an answer that does not fit the format: the caller's
    ``parse()`` raises as openai's does, and the call is recorded as failed (it had gone
    unrecorded), as it is without the raw wrapper."""
    import pydantic

    class Answer(pydantic.BaseModel):
        text: str

    ask = [{"role": "user", "content": "[[reply:no json at all]]"}]
    raw = client.chat.completions.with_raw_response.parse(
        model="m", messages=ask, response_format=Answer
    )
    with pytest.raises(pydantic.ValidationError):
        raw.parse()
    client.flush()
    (listed,) = project.events()
    assert listed["status"] == "error"


def test_a_background_response_is_not_estimated_as_if_it_were_done(
    client: llmtap.Client, project: Project
) -> None:
    """``background=True`` answers "queued": no usage yet, and no estimate of an answer that
    has not been written (it had been recorded as 4 tokens in, 0 out)."""
    queued = client.responses.create(model="gpt-4o-mini", input="later, please", background=True)
    assert queued.status == "queued"
    client.flush()
    (listed,) = project.events()
    event = project.event(listed["id"])
    assert event["response"]["status"] == "queued" and not event.get("usage")


def test_a_structured_output_s_format_is_recorded_as_it_was_sent(
    client: llmtap.Client, project: Project, provider: FakeProvider
) -> None:
    """``parse(response_format=W)`` and ``responses.parse(text_format=W)``: the record holds
    the format openai sent (a strict schema, each API's shape), so a replay sends it again."""
    import pydantic

    class Weather(pydantic.BaseModel):
        city: str

    reply = '[[reply:{"city": "Paris"}]]'
    client.chat.completions.parse(
        model="m", messages=[{"role": "user", "content": reply}], response_format=Weather
    )
    sent_chat = provider.requests[-1]["body"]["response_format"]
    client.responses.parse(model="m", input=reply, text_format=Weather)
    sent_text = provider.requests[-1]["body"]["text"]
    client.flush()
    recorded = {e["api"]: project.event(e["id"])["request"] for e in project.events()}
    assert recorded["chat"]["response_format"] == sent_chat
    assert sent_chat["json_schema"]["strict"] is True
    assert recorded["responses"]["text"] == sent_text and "text_format" not in recorded["responses"]
