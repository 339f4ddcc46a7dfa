"""``llmtap.monitoring``: every code cell of the W&B Weave monitoring cookbook (seed 003), run
in order with only the import changed (``weave`` -> ``llmtap``), then checked through the real
server's query API.

Left out: the ``!pip install`` cell (shell, not Python) and ``wandb.login()`` (W&B's account
login; llmtap's counterpart is the ``LLMTAP_API_KEY`` set here). The getpass cell runs as
written: the key is set, so it asks for nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import pytest

from .conftest import LLMTAP, Project


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, seed_env: Project) -> Project:
    """The seed's environment; the llmtap key comes from LLMTAP_API_KEY, as the seed says."""
    monkeypatch.setenv("LLMTAP_API_KEY", seed_env.key)
    return seed_env


def run_seed_cells(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """The cookbook's cells, as one notebook session; returns its globals."""
    import llmtap as weave  # noqa: F401  (the seed imports weave here)

    WANDB_BASE_URL = "https://api.wandb.ai"
    os.environ["WANDB_BASE_URL"] = WANDB_BASE_URL

    # authenticate with OpenAI
    from getpass import getpass

    if os.getenv("OPENAI_API_KEY") is None:
        os.environ["OPENAI_API_KEY"] = getpass(
            "Paste your OpenAI key from: https://platform.openai.com/account/api-keys\n"
        )
    assert os.getenv("OPENAI_API_KEY", "").startswith("sk-"), (
        "This doesn't look like a valid OpenAI API key"
    )
    print("OpenAI API key configured")

    WB_ENTITY = ""  # set to your wandb username or team name
    WB_PROJECT = "weave"  # top-level directory for this work
    STREAM_NAME = "openai_logs"  # record table which stores the logs of OpenAI API calls

    from llmtap.monitoring import init_monitor, openai

    m = init_monitor(f"{WB_ENTITY}/{WB_PROJECT}/{STREAM_NAME}")

    # specifying a single model for simplicity
    OPENAI_MODEL = "gpt-3.5-turbo"

    # prefill with some sample logs
    r = openai.ChatCompletion.create(
        model=OPENAI_MODEL, messages=[{"role": "user", "content": "hello world!"}]
    )
    r = openai.ChatCompletion.create(
        model=OPENAI_MODEL, messages=[{"role": "user", "content": "what is 2+2?"}]
    )

    # Example 0
    response = openai.ChatCompletion.create(
        model=OPENAI_MODEL,
        messages=[
            {
                "role": "user",
                "content": "What is the meaning of life, the universe, and everything?",
            },
        ],
    )
    print(response["choices"][0]["message"]["content"])

    # Example 1
    system_prompt = "you always write in bullet points"
    prompt_template = "solve the following equation step by step: {equation}"
    params = {"equation": "4 * (3 - 1)"}
    openai.ChatCompletion.create(
        model=OPENAI_MODEL,
        messages=[
            {"role": "system", "content": system_prompt},
            {"role": "user", "content": prompt_template.format(**params)},
        ],
        # you can add additional attributes to the logged record
        # see the monitor_api notebook for more examples
        monitor_attributes={
            "system_prompt": system_prompt,
            "prompt_template": prompt_template,
            "params": params,
        },
    )

    # Example 2
    from llmtap.monitoring.openai import message_from_stream

    r = openai.ChatCompletion.create(
        model=OPENAI_MODEL,
        messages=[
            {
                "role": "system",
                "content": "You are a robot and only speak in robot, like beep bloop bop.",
            },
            {"role": "user", "content": "Tell me a 50-word story."},
        ],
        stream=True,
    )
    for s in message_from_stream(r):
        print(s, end="")

    # Example 3
    def explain_math(system_prompt, prompt_template, params):  # type: ignore[no-untyped-def]
        openai.ChatCompletion.create(
            model=OPENAI_MODEL,
            messages=[
                {"role": "system", "content": system_prompt},
                {"role": "user", "content": prompt_template.format(**params)},
            ],
            # you can add additional attributes to the logged record
            # see the monitor_api notebook for more examples
            monitor_attributes={
                "system_prompt": system_prompt,
                "prompt_template": prompt_template,
                "params": params,
            },
        )

    # feel free to substitute your own prompts :)
    system_prompts = [
        "you're extremely flowery and poetic",
        "you're very direct and precise",
        "balance brevity with insight",
    ]
    prompt_template = "explain the solution of the following to a {audience}: {equation}"
    equations = ["x^2 + 4x + 9 = 0", "15 * (2 - 6) / 4"]
    audience = ["new student", "math genius"]

    for system_prompt in system_prompts:
        for equation in equations:
            for person in audience:
                params = {"equation": equation, "audience": person}
                explain_math(system_prompt, prompt_template, params)

    assert m.flush()
    return {
        "m": m,
        "system_prompts": system_prompts,
        "equations": equations,
        "audience": audience,
        "response": response,
    }


def test_every_cell_runs_and_lands(env: Project, capsys: pytest.CaptureFixture[str]) -> None:
    run_seed_cells(capsys)
    out = capsys.readouterr().out
    assert "OpenAI API key configured" in out
    assert f"{env.server.url}/events?attributes.monitor_stream=openai_logs" in out  # the link
    assert "echo: What is the meaning of life, the universe, and everything?" in out
    assert "echo: Tell me a 50-word story." in out  # Example 2's pieces, printed live

    events = env.events(**{"attributes.monitor_stream": "openai_logs"})
    non_streamed = [e for e in events if not e["request"].get("stream")]
    assert len(non_streamed) == 2 + 1 + 1 + 12
    for event in events:
        assert event["attributes"]["monitor_project"] == "weave"
        assert event["attributes"]["monitor_stream"] == "openai_logs"
        assert "monitor_entity" not in event["attributes"]  # WB_ENTITY is ""
        assert event["model"] == "gpt-3.5-turbo"

    example_1 = env.events(**{"attributes.system_prompt": "you always write in bullet points"})
    assert len(example_1) == 1
    attributes = example_1[0]["attributes"]
    assert attributes["params"] == {"equation": "4 * (3 - 1)"}
    assert attributes["prompt_template"].endswith("{equation}")


def test_example_3_one_group_per_system_prompt(
    env: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    session = run_seed_cells(capsys)
    for system_prompt in session["system_prompts"]:
        rows = env.events(**{"attributes.system_prompt": system_prompt})
        assert len(rows) == 4, system_prompt  # 2 equations x 2 audiences
        audiences = {r["attributes"]["params"]["audience"] for r in rows}
        assert audiences == {"new student", "math genius"}


def test_example_3_in_llmtap_stats_group_by_system_prompt(
    env: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    session = run_seed_cells(capsys)
    out = subprocess.run(
        [*LLMTAP, "stats", "--group-by", "attributes.system_prompt", "--json"],
        env={**os.environ, "LLMTAP_URL": env.server.url, "LLMTAP_API_KEY": env.key},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    answer = json.loads(out)  # the API's answer, as `GET /api/v1/stats` gives it
    assert answer["group_by"] == ["attributes.system_prompt"]
    counts = {g["key"]["attributes.system_prompt"]: g["count"] for g in answer["groups"]}
    for system_prompt in session["system_prompts"]:
        assert counts[system_prompt] == 4


def test_example_3_grouped_by_a_parameter(env: Project, capsys: pytest.CaptureFixture[str]) -> None:
    """ "group by different parameters": Example 3 logs them as one object attribute,
    ``params``; each of its members groups on its own."""
    session = run_seed_cells(capsys)
    answer = env.server.get("/api/v1/stats", env.key, group_by="attributes.params.audience")
    counts = {g["key"]["attributes.params.audience"]: g["count"] for g in answer.json()["groups"]}
    per_audience = len(session["system_prompts"]) * len(session["equations"])
    assert counts == {audience: per_audience for audience in session["audience"]}


def test_v0_responses_are_dicts_and_objects(env: Project) -> None:
    from llmtap.monitoring import init_monitor, openai

    init_monitor("team/proj/stream-x")
    chat = openai.ChatCompletion.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "dict me"}]
    )
    assert isinstance(chat, dict)
    assert chat["choices"][0]["message"]["content"] == "echo: dict me"
    assert chat.choices[0].message.content == "echo: dict me"
    assert chat["usage"]["total_tokens"] > 0
    text = openai.Completion.create(
        model="gpt-3.5-turbo-instruct", prompt="complete me", monitor_attributes={"k": "v"}
    )
    assert text["choices"][0]["text"] == "echo: complete me"
    assert openai.ChatCompletion.create is not None

    from llmtap.monitoring import current_monitor

    assert current_monitor().flush()
    events = env.events(**{"attributes.monitor_entity": "team"})
    assert len(events) == 2
    completion = only(env.events(**{"attributes.k": "v"}))
    assert completion["api"] == "completion"
    assert completion["attributes"]["monitor_stream"] == "stream-x"


def only(events: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(events) == 1, events
    return events[0]


def test_example_2_stream_is_one_record_with_token_counts(env: Project) -> None:
    from llmtap.monitoring import init_monitor, openai
    from llmtap.monitoring.openai import message_from_stream

    m = init_monitor("team/proj/streams")
    r = openai.ChatCompletion.create(
        model="gpt-3.5-turbo",
        messages=[{"role": "user", "content": "Tell me a 50-word story. [[chunks:6]]"}],
        stream=True,
    )
    pieces = list(message_from_stream(r))
    assert len(pieces) > 1
    assert m.flush()
    event = only(env.events(**{"attributes.monitor_stream": "streams"}))
    event = env.event(event["id"])
    assert event["output_text"] == "".join(pieces)
    assert event["usage"]["input_tokens"] > 0
    assert event["usage"]["output_tokens"] > 0
