"""``llmtap demo``: realistic sample traffic, through the real SDK, into a running server.

A built-in fake provider answers, so no OpenAI key is needed: several templates and revisions,
chats, a multi-step chain, tool calls, errors, attributes and feedback.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

import click

from ..wire import new_id
from ._options import api_key_option, url_option

SPORTS = ["soccer", "tennis", "rugby", "curling", "surfing", "chess", "fencing", "rowing"]
SYSTEM_PROMPTS = [
    "you're extremely flowery and poetic",
    "you're very direct and precise",
    "balance brevity with insight",
]
EQUATIONS = ["x^2 + 4x + 9 = 0", "15 * (2 - 6) / 4"]
AUDIENCES = ["new student", "math genius"]
MODELS = ["gpt-4o-mini", "gpt-4o", "gpt-4.1-nano"]


def _send(client: Any, rng: random.Random, n: int) -> int:
    import openai

    import llmtap

    calls = 0

    def chat(messages: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        try:
            return client.chat.completions.create(
                model=kwargs.pop("model", rng.choice(MODELS)), messages=messages, **kwargs
            )
        except openai.APIError:
            return None

    emoji_v1 = [{"role": "user", "content": "Show me an emoji for {sport}"}]
    emoji_v2 = [
        {"role": "system", "content": "Answer with one emoji only."},
        {"role": "user", "content": "Show me an emoji that matches the sport: {sport}"},
    ]
    for i in range(n):
        template = emoji_v1 if i < n // 2 else emoji_v2
        sport = rng.choice(SPORTS)
        failing = i % 12 == 5 or rng.random() < 0.03
        trouble = "[[status:429]]" if failing else f"[[delay:{rng.random() / 20:.3f}]]"
        out = chat(
            llmtap.TemplateChat(template, {"sport": f"{sport} {trouble}"}),
            llmtap={
                "prompt_template_name": "sport-emoji",
                "attributes": {"tier": rng.choice(["free", "pro"]), "sport": sport},
            },
        )
        if out is not None and rng.random() < 0.3:
            client.send_feedback(
                feedback_key=out.model_extra["llmtap_feedback_key"],
                rating=rng.choice([0.0, 0.2, 0.8, 1.0]),
                better_response=rng.choice([None, "⚽", "🎾"]),
            )
    explain = "explain the solution of the following to a {audience}: {equation}"
    for system_prompt in SYSTEM_PROMPTS:
        for equation in EQUATIONS:
            for audience in AUDIENCES:
                params = {"equation": equation, "audience": audience}
                chat(
                    [
                        {"role": "system", "content": system_prompt},
                        {"role": "user", "content": explain.format(**params)},
                    ],
                    llmtap={
                        "prompt_template_name": "explain-math",
                        "attributes": {"system_prompt": system_prompt, **params},
                    },
                )
    for _ in range(3):  # conversations
        chat_id = f"chat-{uuid.uuid4().hex[:6]}"
        history: list[dict[str, Any]] = []
        for question in [
            "Hi! Who are you?",
            "What's the weather in Paris? [[tool:get_weather]]",
            "Thanks, and tomorrow?",
        ]:
            history.append({"role": "user", "content": question})
            out = chat(
                llmtap.TemplateChat(
                    [
                        {"role": "system", "content": "You are {bot}, a helpful assistant."},
                        {"role": "chat_history", "content": "{history}"},
                    ],
                    {"bot": "Tapbot", "history": list(history)},
                ),
                llmtap={"prompt_template_name": "support-bot", "chat_id": chat_id},
            )
            if out is None:
                continue
            message = out.choices[0].message
            history.append(message.model_dump(exclude_none=True))
            for call in message.tool_calls or []:  # answer the tool, as an application would
                history.append(
                    {
                        "role": "tool",
                        "tool_call_id": call.id,
                        "content": '{"forecast": "sunny", "celsius": 21}',
                    }
                )
    chain_id = str(uuid.uuid4())
    parent = None
    for step in [
        "Outline an article about {topic}",
        "Write the intro for: {topic}",
        "Suggest a title for: {topic}",
    ]:
        event_id = str(new_id())
        chat(
            llmtap.TemplateChat(
                [{"role": "user", "content": step}], {"topic": "self-hosted LLM monitoring"}
            ),
            llmtap={
                "prompt_template_name": step.split()[0].lower() + "-step",
                "chain_id": chain_id,
                "parent_event_id": parent,
                "event_id": event_id,
            },
        )
        parent = event_id
    for i in range(8):  # streamed: time to first token, and usage asked for by llmtap
        calls += 1
        stream = client.chat.completions.create(
            model=rng.choice(MODELS),
            stream=True,
            messages=[
                {
                    "role": "user",
                    "content": f"Tell me a short story about {rng.choice(SPORTS)} [[chunks:6]]",
                }
            ],
            llmtap={"prompt_template_name": "story", "attributes": {"tier": "pro"}},
        )
        for n, _ in enumerate(stream):
            if i == 7 and n == 2:
                break  # a reader who stops early: recorded as cancelled
        stream.close()
    for _ in range(5):
        calls += 1
        client.completions.create(
            model="gpt-3.5-turbo-instruct",
            prompt=llmtap.TemplateText("Summarise: {text}", {"text": "llmtap records every call."}),
        )
    return calls


@click.command()
@url_option
@api_key_option
@click.option("-n", "count", default=60, show_default=True, help="Calls of the main template.")
@click.option("--seed", default=0, show_default=True, help="Random seed, for the same traffic.")
def demo(url: str, api_key: str | None, count: int, seed: int) -> None:
    """Send sample traffic through the real SDK into a running server (no OpenAI key needed)."""
    import llmtap
    from llmtap.fake_provider import FakeProvider

    if not api_key:
        raise click.UsageError("an API key is needed: --api-key or LLMTAP_API_KEY")
    with FakeProvider() as provider:
        try:
            client = llmtap.Client(
                api_key="sk-demo",
                base_url=provider.base_url,
                max_retries=0,
                llmtap={"url": url, "api_key": api_key},
            )
        except ValueError as e:  # an LLMTAP_* setting the SDK refuses, named in the message
            raise click.UsageError(str(e)) from None
        calls = _send(client, random.Random(seed), count)
        delivered = client.flush(30)
    stats = client.stats()
    if stats.failed:  # a wrong key (401) or another refusal: the server keeps none of them
        raise click.ClickException(
            f"the server at {url} refused {stats.failed} of {stats.queued} events: is the key"
            " an ingest key of this server?"
        )
    click.echo(f"sent {calls} calls to {url}" + ("" if delivered else " (some not delivered)"))
