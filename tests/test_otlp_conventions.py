"""Conventions past the main three: Vercel's AI SDK, as its telemetry writes them (``ai.*``
beside older GenAI names: the provider call becomes an event with its messages, answer, tool
calls, usage, time to first chunk and metadata; the wrapping ``ai.generateText`` span is no
call), and the older GenAI conventions' per-message span events."""

from __future__ import annotations

import json

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from tests.conftest import Project
from tests.test_otlp_hostile import _answer, _body, _post, _spans

MESSAGES = [
    {"role": "system", "content": "You answer briefly."},
    {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
    {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Let me look."},
            {
                "type": "tool-call",
                "toolCallId": "c1",
                "toolName": "weather",
                "input": {"q": "Paris"},
            },
        ],
    },
    {
        "role": "tool",
        "content": [
            {"type": "tool-result", "toolCallId": "c1", "toolName": "weather", "output": "sunny"}
        ],
    },
]
OUTER = {
    "_name": "ai.streamText",
    "ai.operationId": "ai.streamText",
    "ai.model.id": "gpt-4o-mini",
    "ai.prompt": json.dumps({"messages": MESSAGES}),
}
INNER = {
    "_name": "ai.streamText.doStream",
    "ai.operationId": "ai.streamText.doStream",
    "operation.name": "ai.streamText.doStream my-feature",
    "ai.model.id": "gpt-4o-mini",
    "ai.model.provider": "openai.chat",
    "ai.prompt.messages": json.dumps(MESSAGES),
    "ai.settings.temperature": 0.3,
    "ai.settings.maxOutputTokens": 200,
    "ai.response.text": "It is sunny in Paris.",
    "ai.response.toolCalls": json.dumps(
        [{"toolCallType": "function", "toolCallId": "c2", "toolName": "log", "input": {"n": 1}}]
    ),
    "ai.response.finishReason": "stop",
    "ai.response.id": "resp-1",
    "ai.response.model": "gpt-4o-mini-2024-07-18",
    "ai.response.msToFirstChunk": 123.5,
    "ai.usage.inputTokens": 40,
    "ai.usage.outputTokens": 7,
    "ai.telemetry.functionId": "my-feature",
    "ai.telemetry.metadata.user": "u-1",
    "gen_ai.system": "openai.chat",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.request.temperature": 0.3,
    "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
    "gen_ai.response.id": "resp-1",
    "gen_ai.response.finish_reasons": ["stop"],
    "gen_ai.usage.input_tokens": 40,
    "gen_ai.usage.output_tokens": 7,
}


def test_ai_sdk_spans(project: Project) -> None:
    answer = _answer(_post(project, _body(_spans(OUTER, INNER))))
    assert answer.partial_success.rejected_spans == 0
    assert "1 of 2 spans are not model calls" in answer.partial_success.error_message
    (listed,) = project.events()
    event = project.event(listed["id"])
    assert (event["api"], event["provider"], event["model"]) == (
        "chat",
        "openai",
        "gpt-4o-mini-2024-07-18",
    )
    assert event["request"]["messages"] == [
        {"role": "system", "content": "You answer briefly."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"q": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    assert (event["request"]["temperature"], event["request"]["max_tokens"]) == (0.3, 200)
    (choice,) = event["response"]["choices"]
    assert choice["message"]["content"] == event["output_text"] == "It is sunny in Paris."
    assert choice["message"]["tool_calls"][0]["function"] == {
        "name": "log",
        "arguments": '{"n": 1}',
    }
    assert choice["finish_reason"] == "stop" and event["response"]["id"] == "resp-1"
    assert event["usage"]["input_tokens"] == 40 and event["usage"]["total_tokens"] == 47
    assert event["ttft_ms"] == 123.5
    assert event["attributes"]["function_id"] == "my-feature"
    assert event["attributes"]["user"] == "u-1"
    assert event["cost_usd"] is not None and event["cost_usd"] > 0
    assert not any(k.startswith("ai.") for k in event["attributes"])  # all read


def test_ai_sdk_cached_and_reasoning_tokens_beside_the_genai_totals(project: Project) -> None:
    """Its spans carry the GenAI names with the totals only: the cached and reasoning counts
    come from ``ai.usage.*``. Cached past the input (Anthropic's, through AI SDK 5, leaves
    them out of it) are added to it, as llmtap counts input tokens."""
    usages = [
        ({"ai.usage.cachedInputTokens": 30, "ai.usage.reasoningTokens": 5}, 40, 30, 5),
        ({"ai.usage.cachedInputTokens": 5000, "ai.usage.inputTokens": 10,
          "gen_ai.usage.input_tokens": 10}, 5010, 5000, None),
    ]  # fmt: skip
    for extra, *_ in usages:
        _answer(_post(project, _body(_spans({**INNER, **extra}))))
    events = [project.event(e["id"]) for e in reversed(project.events())]
    for event, (_, input_tokens, cached, reasoning) in zip(events, usages, strict=True):
        usage = event["usage"]
        assert (usage["input_tokens"], usage["cached_tokens"]) == (input_tokens, cached)
        assert usage.get("reasoning_tokens") == reasoning
        assert usage["total_tokens"] == input_tokens + 7


def test_older_per_message_events(project: Project) -> None:
    """The older GenAI conventions' message events (``gen_ai.user.message``, ``gen_ai.choice``)
    on the span: as attributes, or as a JSON body in ``gen_ai.event.content``."""
    (span,) = _spans({"_name": "chat gpt-4o-mini", "gen_ai.system": "openai",
                      "gen_ai.request.model": "gpt-4o-mini"})  # fmt: skip
    request = encode_spans([span])
    pb = request.resource_spans[0].scope_spans[0].spans[0]
    for name, attributes in (
        ("gen_ai.system.message", {"content": "Be brief."}),
        ("gen_ai.user.message", {"gen_ai.event.content": json.dumps({"content": "Hi?"})}),
        (
            "gen_ai.choice",
            {
                "index": 0,
                "finish_reason": "stop",
                "message": json.dumps({"role": "assistant", "content": "Hello."}),
            },
        ),
    ):
        added = pb.events.add(name=name, time_unix_nano=pb.start_time_unix_nano)
        for key, value in attributes.items():
            kv = added.attributes.add(key=key)
            if isinstance(value, int):
                kv.value.int_value = value
            else:
                kv.value.string_value = value
    _answer(_post(project, request.SerializeToString()))
    (listed,) = project.events()
    event = project.event(listed["id"])
    assert event["request"]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi?"},
    ]
    assert event["output_text"] == "Hello."
    assert event["response"]["choices"][0]["finish_reason"] == "stop"


def test_a_finish_reason_sent_as_one_string(project: Project) -> None:
    """``gen_ai.response.finish_reasons`` is a string array; some instrumentations send the
    one reason as a plain string. Either way the choice keeps it."""
    output = [{"role": "assistant", "parts": [{"type": "text", "content": "Hi."}]}]
    for reasons in ("length", ["length"]):
        (span,) = _spans({"_name": "chat gpt-4o-mini", "gen_ai.operation.name": "chat",
                          "gen_ai.request.model": "gpt-4o-mini",
                          "gen_ai.output.messages": json.dumps(output),
                          "gen_ai.response.finish_reasons": reasons})  # fmt: skip
        assert _answer(_post(project, _body([span]))).partial_success.rejected_spans == 0
    events = [project.event(e["id"]) for e in project.events()]
    assert [e["response"]["choices"][0]["finish_reason"] for e in events] == ["length"] * 2


def test_names_of_other_providers_and_instrumentations(project: Project) -> None:
    """Current GenAI names from Bedrock (priced as the price library's ``aws``), a finish reason
    on each output message, system instructions, the conversation and the time to the first
    chunk; OpenLLMetry's prompt-cache counts (cheaper than the same tokens uncached); and
    OpenInference's answer as plain text, its total counted."""
    output = [{"role": "assistant", "parts": [{"type": "text", "content": "Hi."}],
               "finish_reason": "length"}]  # fmt: skip
    user = [{"role": "user", "parts": [{"type": "text", "content": "Hello?"}]}]
    bedrock = {
        "_name": "chat nova",
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "aws.bedrock",
        "gen_ai.request.model": "amazon.nova-pro-v1:0",
        "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "Be kind."}]),
        "gen_ai.input.messages": json.dumps(user),
        "gen_ai.output.messages": json.dumps(output),
        "gen_ai.conversation.id": "conv-1",
        "gen_ai.response.time_to_first_chunk": 0.25,
        "gen_ai.usage.input_tokens": 100,
        "gen_ai.usage.output_tokens": 10,
    }
    legacy = {"gen_ai.system": "Anthropic", "gen_ai.request.model": "claude-3-5-sonnet-20240620",
              "gen_ai.usage.prompt_tokens": 1000, "gen_ai.usage.completion_tokens": 10}  # fmt: skip
    cached = {"_name": "anthropic.chat cached", **legacy,
              "gen_ai.usage.cache_read_input_tokens": 800,
              "gen_ai.usage.cache_creation_input_tokens": 100}  # fmt: skip
    plain = {"_name": "ChatCompletion", "openinference.span.kind": "LLM",
             "llm.model_name": "gpt-4o-mini", "output.value": "Plain answer.",
             "llm.token_count.prompt": 5, "llm.token_count.completion": 2}  # fmt: skip
    spans = _spans({"_name": "root"}, bedrock, cached, {"_name": "anthropic.chat", **legacy}, plain)
    assert _answer(_post(project, _body(spans))).partial_success.rejected_spans == 0
    stored = [project.event(e["id"]) for e in project.events()]
    events = {e["attributes"]["otel.span_name"]: e for e in stored}

    nova = events["chat nova"]
    assert nova["provider"] == "aws.bedrock" and nova["cost_usd"] > 0
    assert nova["request"]["messages"] == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Hello?"},
    ]
    assert nova["response"]["choices"][0]["finish_reason"] == "length"
    assert "_finish" not in nova["response"]["choices"][0]["message"]
    assert nova["chat_id"] == "conv-1" and nova["ttft_ms"] == 250

    with_cache, without = events["anthropic.chat cached"], events["anthropic.chat"]
    assert with_cache["usage"]["cached_tokens"] == 800
    assert with_cache["usage"]["cache_creation_tokens"] == 100
    assert "gen_ai.usage.cache_read_input_tokens" not in with_cache["attributes"]
    assert 0 < with_cache["cost_usd"] < without["cost_usd"]

    answer = events["ChatCompletion"]
    assert answer["output_text"] == "Plain answer."
    assert answer["response"]["choices"][0]["message"]["content"] == "Plain answer."
    assert answer["usage"]["total_tokens"] == 7


def test_ai_sdk_embeddings(project: Project) -> None:
    """``ai.embedMany``'s inner span: its inputs, its token count (so a cost), and the vectors
    left out (their sizes kept), as the SDK's embeddings events are."""
    inner = {
        "_name": "ai.embedMany.doEmbed",
        "ai.operationId": "ai.embedMany.doEmbed",
        "ai.model.id": "text-embedding-3-small",
        "ai.model.provider": "openai.embedding",
        "ai.values": [json.dumps("sunny day"), json.dumps("rainy night")],
        "ai.embeddings": [json.dumps([0.1] * 1536), json.dumps([0.2] * 1536)],
        "ai.usage.tokens": 4,
    }
    answer = _answer(_post(project, _body(_spans({"_name": "ai.embedMany"}, inner))))
    assert answer.partial_success.rejected_spans == 0
    (listed,) = project.events()
    event = project.event(listed["id"])
    assert event["api"] == "embeddings" and event["provider"] == "openai"
    assert event["request"]["input"] == ["sunny day", "rainy night"]
    assert event["usage"]["input_tokens"] == 4 and event["cost_usd"] > 0
    assert [d["embedding"] for d in event["response"]["data"]] == [
        "[1536 floats omitted by llmtap]"
    ] * 2
    assert not any(key.startswith("ai.") for key in event["attributes"])


def test_openinference_completions_api(project: Project) -> None:
    """OpenInference's completions-API spans: the prompts (``llm.prompts.N.prompt.text``, or
    an older instrumentation's string array) and the choices' texts become the request's
    ``prompt`` and the answer's choices, as the SDK records ``completions.create``."""
    base = {"openinference.span.kind": "LLM", "llm.model_name": "gpt-3.5-turbo-instruct",
            "llm.invocation_parameters": json.dumps({"max_tokens": 20}),
            "llm.token_count.prompt": 4, "llm.token_count.completion": 3}  # fmt: skip
    flat = {"_name": "Completion", **base, "llm.prompts.0.prompt.text": "Say hi",
            "llm.choices.1.completion.text": "Hello", "llm.choices.0.completion.text": "Hi!",
            "llm.finish_reason": "stop"}  # fmt: skip
    older = {"_name": "Completion, older", **base, "llm.prompts": ["One", "Two"]}
    spans = _spans({"_name": "root"}, flat, older)
    assert _answer(_post(project, _body(spans))).partial_success.rejected_spans == 0
    stored = [project.event(e["id"]) for e in project.events()]
    events = {e["attributes"]["otel.span_name"]: e for e in stored}

    one = events["Completion"]
    assert one["api"] == "completion" and one["cost_usd"] > 0
    assert one["request"] == {
        "model": "gpt-3.5-turbo-instruct",
        "max_tokens": 20,
        "prompt": "Say hi",
    }
    assert [(c["index"], c["text"], c["finish_reason"]) for c in one["response"]["choices"]] == [
        (0, "Hi!", "stop"),
        (1, "Hello", "stop"),
    ]
    assert one["output_text"] == "Hi!\nHello"
    assert not any(k.startswith(("llm.prompts", "llm.choices")) for k in one["attributes"])

    two = events["Completion, older"]
    assert two["api"] == "completion" and two["request"]["prompt"] == ["One", "Two"]


def test_ai_sdk_anthropic_cache_counts_in_both_versions(project: Project) -> None:
    """AI SDK 5 gives Anthropic's own input count, without the tokens read from the prompt
    cache and those written to it (those only in the provider's metadata); AI SDK 6 counts
    the input whole and details it. Both become one usage: 9,000 tokens in, 3,000 of them
    read from the cache and 1,000 written, priced so."""
    import genai_prices

    model = "claude-sonnet-4-20250514"
    anthropic = {**INNER, "ai.model.id": model, "ai.response.model": model,
                 "ai.model.provider": "anthropic.messages", "gen_ai.system": "anthropic.messages",
                 "gen_ai.request.model": model, "gen_ai.response.model": model,
                 "ai.usage.outputTokens": 100, "gen_ai.usage.output_tokens": 100}  # fmt: skip
    version_5 = {**anthropic, "ai.usage.inputTokens": 5000, "gen_ai.usage.input_tokens": 5000,
                 "ai.usage.cachedInputTokens": 3000,
                 "ai.response.providerMetadata": json.dumps(
                     {"anthropic": {"cacheCreationInputTokens": 1000}})}  # fmt: skip
    version_6 = {**anthropic, "ai.usage.inputTokens": 9000, "gen_ai.usage.input_tokens": 9000,
                 "ai.usage.cachedInputTokens": 3000,
                 "ai.usage.inputTokenDetails.noCacheTokens": 5000,
                 "ai.usage.inputTokenDetails.cacheReadTokens": 3000,
                 "ai.usage.inputTokenDetails.cacheWriteTokens": 1000}  # fmt: skip
    for spec in (version_5, version_6):
        assert _answer(_post(project, _body(_spans(spec)))).partial_success.rejected_spans == 0
    expected = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=9000, cache_read_tokens=3000, cache_write_tokens=1000, output_tokens=100
        ),
        model,
        provider_id="anthropic",
    ).total_price
    for listed in project.events():
        event = project.event(listed["id"])
        names = ("input_tokens", "cached_tokens", "cache_creation_tokens", "total_tokens")
        usage = {k: event["usage"].get(k) for k in names}
        assert usage == {"input_tokens": 9000, "cached_tokens": 3000,
                         "cache_creation_tokens": 1000, "total_tokens": 9100}  # fmt: skip
        assert event["cost_usd"] == pytest.approx(float(expected), rel=1e-9)
        assert not any(k.startswith("ai.") for k in event["attributes"])
