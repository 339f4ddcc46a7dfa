"""OTLP/HTTP ingest (``POST /v1/traces``), end to end: real instrumentation packages driving
the real openai SDK against the fake provider, exporting through the real OTLP exporter
(protobuf) and the official OTLP/JSON encoder, to a real ``llmtap serve``; each call's event
compared field by field with the same call recorded by ``llmtap.Client``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import genai_prices
import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

import llmtap
from llmtap.fake_provider import FakeProvider
from llmtap.server.otlp.common import _NAMESPACE, event_id
from llmtap.server.otlp.decode import attributes_of
from tests.conftest import Project, tap_config
from tests.otlp_calls import ANTHROPIC_CASES, CASES, run_calls

ROOT = Path(__file__).resolve().parent.parent


def _case(event: dict[str, Any]) -> str:
    if event["api"] == "embeddings":
        return "embeddings"
    users = [m for m in event["request"]["messages"] if m["role"] == "user"]
    return str(users[-1]["content"]).split()[0].removeprefix("case:")


def _by_case(project: Project) -> dict[str, dict[str, Any]]:
    events = [project.event(e["id"]) for e in project.events(limit=50)]
    by_case = {_case(e): e for e in events}
    assert sorted(by_case) == sorted(CASES), sorted(by_case)
    assert len(events) == len(CASES)
    return by_case


def _run_app(convention: str, encoding: str, provider: FakeProvider, project: Project) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "otlp_app.py"), convention, encoding,
         provider.base_url, project.server.url, project.key],
        capture_output=True, text=True, env=env, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _tool_calls(event: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, arguments) of each tool call; the fake provider's call ids differ per call."""
    return [
        (call["function"]["name"], call["function"]["arguments"])
        for choice in event["response"]["choices"]
        for call in choice["message"]["tool_calls"]
    ]


@pytest.mark.parametrize(
    ("convention", "encoding"),
    [
        *((c, e) for c in ("openinference", "genai") for e in ("protobuf", "json")),
        # The messages in an event, on the logs pipeline (OTLP protobuf, as its exporter sends).
        ("genai-events", "protobuf"),
    ],
)
def test_instrumented_calls_match_llmtap_client(
    convention: str, encoding: str, provider: FakeProvider, project: Project
) -> None:
    output = _run_app(convention, encoding, provider, project)
    if encoding == "json":  # every export answered 200, with no span refused
        answers = [line for line in output.splitlines() if line.startswith("OTLP")]
        assert answers and all(a.startswith("OTLP 200") for a in answers), answers
        assert not any("rejectedSpans" in a for a in answers), answers
    otel = _by_case(project)

    native_project = Project(project.server.new_key(), project.server)
    client = llmtap.Client(
        api_key="sk-fake", base_url=provider.base_url, max_retries=0,
        llmtap=tap_config(native_project),
    )  # fmt: skip
    run_calls(client)
    client.close()
    native = _by_case(native_project)

    for case in CASES:
        ours, theirs = native[case], otel[case]
        # The SDK names a provider by its host (the fake's is 127.0.0.1), the instrumentations
        # by the client library.
        assert theirs["provider"] == "openai"
        for field in ("api", "model", "status", "output_text"):
            assert theirs[field] == ours[field], (case, field, theirs[field], ours[field])
        if case != "embeddings":
            assert theirs["request"]["messages"] == ours["request"]["messages"], case
        for count in ("input_tokens", "output_tokens", "total_tokens"):
            if case == "embeddings" and count != "input_tokens":
                continue  # the GenAI instrumentation reports only the input's
            got = (theirs["usage"] or {}).get(count)
            assert got == ((ours["usage"] or {}).get(count)), (case, count, theirs["usage"])
        if case == "error":
            assert theirs["error"]["type"] == ours["error"]["type"] == "RateLimitError"
            assert theirs["error"]["status_code"] == ours["error"]["status_code"] == 429
            assert "429" in theirs["error"]["message"]
        else:
            assert theirs["error"] is None
        if case == "tools":
            calls, ours_calls = _tool_calls(theirs), _tool_calls(ours)
            assert calls == ours_calls == [("get_weather", '{"city": "Paris"}')]
        if case == "chat":
            assert theirs["request"]["temperature"] == 0.5
        if case == "stream" and convention == "openinference":  # its first-token event
            assert 0 < theirs["ttft_ms"] <= theirs["latency_ms"]
        # Where it came from, and the OTel context kept.
        assert theirs["sdk"]["name"].startswith(("openinference.", "opentelemetry."))
        assert ours["sdk"]["name"] == llmtap.wire.SDK_NAME
        assert len(theirs["chain_id"]) == 32
        assert theirs["attributes"]["service.name"] == "otlp-app"
        assert theirs["attributes"]["deployment.environment"] == "test"
        assert theirs["cost_usd"] is not None or case == "error"
        assert theirs["latency_ms"] > 0


def test_anthropic_calls_through_openinference(provider: FakeProvider, project: Project) -> None:
    """OpenInference's Anthropic instrumentation on the real anthropic SDK, against the fake
    provider's Messages API: each call's event as the call was made and answered."""
    _run_app("anthropic", "protobuf", provider, project)
    events = [project.event(e["id"]) for e in project.events(limit=50)]
    by_case = {_case(e): e for e in events}
    assert sorted(by_case) == sorted(ANTHROPIC_CASES) and len(events) == len(ANTHROPIC_CASES)
    for case, event in by_case.items():
        assert (event["api"], event["provider"]) == ("chat", "anthropic"), case
        assert event["model"].startswith("claude-3-5-haiku"), case
        system, user = event["request"]["messages"]
        assert system == {"role": "system", "content": "You answer briefly."}, case
        assert user["role"] == "user" and user["content"].startswith(f"case:{case}"), case
        assert event["sdk"]["name"] == "openinference.instrumentation.anthropic"
        assert event["latency_ms"] > 0
        if case == "error":
            assert event["status"] == "error"
            assert event["error"]["type"] == "RateLimitError"
            assert event["error"]["status_code"] == 429
            continue
        assert event["status"] == "ok" and event["error"] is None, case
        # The fake counts words: the system's three, and the user's.
        assert event["usage"]["input_tokens"] == 3 + len(user["content"].split()), case
        assert event["usage"]["output_tokens"] >= 1, case
        assert event["cost_usd"] is not None and event["cost_usd"] > 0, case  # Anthropic's prices
        if case == "cache":  # prompt-cache reads and writes, apart, each at its own price
            tokens = event["usage"]
            assert (tokens["cached_tokens"], tokens["cache_creation_tokens"]) == (2, 3)
            price = genai_prices.calc_price(
                genai_prices.Usage(
                    input_tokens=tokens["input_tokens"],
                    output_tokens=tokens["output_tokens"],
                    cache_read_tokens=2,
                    cache_write_tokens=3,
                ),
                event["model"],
                provider_id="anthropic",
            )
            assert event["cost_usd"] == pytest.approx(float(price.total_price), rel=1e-9)
        if case == "tools":
            (call,) = event["response"]["choices"][0]["message"]["tool_calls"]
            assert call["function"]["name"] == "get_weather"
            assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
        else:  # the fake echoes the prompt, its directives left out
            assert event["output_text"] == "echo: " + user["content"].split(" [[")[0], case
    assert by_case["chat"]["request"]["stop_sequences"] == ["END"]  # the call's settings


@given(st.integers(min_value=1, max_value=2**63 - 1), st.text(), st.text())
def test_a_span_s_event_id_is_the_uuid5_of_its_project_trace_and_span(
    project_id: int, trace_id: str, span_id: str
) -> None:
    """Ids already stored were made by ``uuid.uuid5``: the spelled-out version must give the
    same, or a span sent again after an upgrade would be stored twice."""
    name = f"{project_id}:{trace_id}:{span_id}"
    assert event_id(project_id, trace_id, span_id) == str(uuid.uuid5(_NAMESPACE, name))


def test_attributes_of_every_kind_decode_as_json_values() -> None:
    """Each ``AnyValue`` kind (the plain ones read in the loop, the others through
    ``value_of``) as the JSON-ready value the mapping reads."""
    pairs = [
        KeyValue(key="s", value=AnyValue(string_value="text")),
        KeyValue(key="i", value=AnyValue(int_value=-7)),
        KeyValue(key="d", value=AnyValue(double_value=0.25)),
        KeyValue(key="b", value=AnyValue(bool_value=False)),
        KeyValue(key="x", value=AnyValue(bytes_value=b"\x01\xff")),
        KeyValue(key="empty", value=AnyValue()),
        KeyValue(
            key="a",
            value=AnyValue(
                array_value=ArrayValue(values=[AnyValue(int_value=1), AnyValue(string_value="two")])
            ),
        ),
        KeyValue(
            key="m",
            value=AnyValue(
                kvlist_value=KeyValueList(
                    values=[KeyValue(key="k", value=AnyValue(bool_value=True))]
                )
            ),
        ),
    ]
    assert attributes_of(pairs) == {
        "s": "text",
        "i": -7,
        "d": 0.25,
        "b": False,
        "x": "01ff",
        "empty": None,
        "a": [1, "two"],
        "m": {"k": True},
    }
