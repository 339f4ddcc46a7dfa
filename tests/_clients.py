"""One test, both clients: ``tapped`` is a :class:`Caller` over ``llmtap.Client`` or
``llmtap.AsyncClient`` (the async one driven on an event loop of its own), so each test of an
API family runs against both. Import the fixture into a test module to use it."""

from __future__ import annotations

import asyncio
import gc
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest

import llmtap
from llmtap.fake_provider import FakeProvider

from .conftest import Project, tap_config


class Caller:
    """Calls a method by its path on the client and reads streams, sync or async alike."""

    def __init__(self, client: Any, project: Project) -> None:
        self.client = client
        self.project = project
        self.is_async = isinstance(client, openai.AsyncOpenAI)
        self.loop = asyncio.new_event_loop() if self.is_async else None

    def run(self, value: Any) -> Any:
        if self.loop is not None and asyncio.iscoroutine(value):
            return self.loop.run_until_complete(value)
        return value

    def method(self, path: str) -> Any:
        target = self.client
        for name in path.split("."):
            target = getattr(target, name)
        return target

    def call(self, path: str, **kwargs: Any) -> Any:
        return self.run(self.method(path)(**kwargs))

    def read(self, stream: Any, limit: int | None = None) -> list[Any]:
        """The chunks of ``stream``, all of them or the first ``limit`` (then stop reading,
        without closing)."""
        if not self.is_async:
            out = []
            for chunk in stream:
                out.append(chunk)
                if limit is not None and len(out) >= limit:
                    break
            return out

        async def read() -> list[Any]:
            out = []
            async for chunk in stream:
                out.append(chunk)
                if limit is not None and len(out) >= limit:
                    break
            return out

        return self.run(read())

    def within(self, manager: Any, use: Callable[[Any], Any]) -> Any:
        """``use(entered)`` inside ``with manager as entered`` (``async with`` for the async
        client), its result awaited when it is awaitable."""
        if not self.is_async:
            with manager as entered:
                return use(entered)

        async def run() -> Any:
            async with manager as entered:
                result = use(entered)
                return await result if inspect.isawaitable(result) else result

        return self.run(run())

    def close(self, closable: Any) -> None:
        self.run(closable.close())

    def collect_garbage(self) -> None:
        gc.collect()
        if self.loop is not None:  # async generators are closed on the loop, in a task
            self.loop.run_until_complete(asyncio.sleep(0.05))

    def flush(self) -> None:
        assert self.client.flush(10)

    def events(self, **filters: Any) -> list[dict[str, Any]]:
        self.flush()
        return [self.project.event(e["id"]) for e in self.project.events(**filters)]

    def only_event(self, **filters: Any) -> dict[str, Any]:
        events = self.events(**filters)
        assert len(events) == 1, events
        return events[0]

    def shutdown(self) -> None:
        self.run(self.client.close())
        if self.loop is not None:
            self.loop.close()


def make_caller(kind: str, provider: FakeProvider, project: Project, **config: Any) -> Caller:
    cls = llmtap.AsyncClient if kind == "async" else llmtap.Client
    client = cls(
        api_key="sk-fake",
        base_url=provider.base_url,
        max_retries=0,
        llmtap=tap_config(project, **config),
    )
    return Caller(client, project)


@pytest.fixture(params=["sync", "async"])
def tapped(
    request: pytest.FixtureRequest, provider: FakeProvider, project: Project
) -> Iterator[Caller]:
    caller = make_caller(request.param, provider, project)
    yield caller
    caller.shutdown()


def record_calls(client: Any, n: int, name: str, text: str = "{name} {i}") -> None:
    """``n`` chat calls on a sync client, filed under the template ``name``."""
    for i in range(n):
        client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": text.format(name=name, i=i)}],
            llmtap={"prompt_template_name": name},
        )
