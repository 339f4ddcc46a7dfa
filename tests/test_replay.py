"""``llmtap replay`` reruns a recorded call as it was made: what it refuses, and what a
replay's own event keeps for the next one. (The replay of a template's revision, with the
rest of a prompt test's flow, is in ``test_prompt_tests``.)"""

from __future__ import annotations

import llmtap
from llmtap.fake_provider import FakeProvider

from .conftest import Project, tap_config
from .test_prompt_tests import cli


def test_a_responses_call_is_not_replayed_as_a_completion(
    project: Project, provider: FakeProvider
) -> None:
    """A Responses API call (input, instructions) had been sent to /v1/completions as a
    prompt and recorded as a completion: replay says it reruns chat and completion calls."""
    client = llmtap.Client(api_key="sk", base_url=provider.base_url, llmtap=tap_config(project))
    client.responses.create(model="gpt-4o-mini", input="Say hello", instructions="In French")
    client.flush()
    (recorded,) = project.events(api="responses")
    sent = len(provider.requests)
    done = cli(project, provider, "replay", recorded["id"])
    assert done.returncode == 1, done.stderr
    assert "replay reruns chat and completion calls; this event is a responses call" in done.stderr
    assert len(provider.requests) == sent


def test_a_replay_s_own_event_is_replayed_with_its_settings(
    project: Project, provider: FakeProvider
) -> None:
    """A replay (or a test run) sends the case's settings in ``extra_body``, and its event
    records them there: a case made from that event keeps them (a replay's replay had been
    sent without its tools and temperature)."""
    client = llmtap.Client(api_key="sk", base_url=provider.base_url, llmtap=tap_config(project))
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        extra_body={"temperature": 0.3, "tools": [tool]},
        llmtap={"prompt_template_name": "replayed-settings"},
    )
    client.flush()
    (listed,) = project.events(prompt_template_name="replayed-settings")
    done = cli(project, provider, "replay", listed["id"], "--json")
    assert done.returncode == 0, done.stderr
    sent = provider.requests[-1]["body"]
    assert sent["temperature"] == 0.3 and sent["tools"] == [tool]
