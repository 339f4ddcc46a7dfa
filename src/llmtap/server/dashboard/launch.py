"""Replays and test runs started from the dashboard, through a model provider configured for
the server at start (``LLMTAP_PROVIDER_API_KEY``, ``LLMTAP_PROVIDER_BASE_URL``).

The server does not call models itself: it runs ``llmtap replay`` or ``llmtap test`` (the
same commands a user runs, so each call goes through ``llmtap.AsyncClient`` and is recorded)
in a child process, with the provider's key in the child's environment and a key of the
project made for that one job and revoked when it ends. The provider key is never stored,
logged or shown: pages only say whether one is configured. Without one, the pages show the
command to run instead.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ...evals.cases import REPLAYED, replay_refused
from ...evals.evaluators import stored_evaluators
from ...settings import resolve
from ...store import Store
from ..auth import create_key
from ..errors import ApiError
from ..query import query_event
from .auth import check_csrf
from .render import render_page
from .tests_pages import back_to, may_change_tests

__all__ = ["Provider", "replay_form", "run_form"]

log = logging.getLogger("llmtap.server")

_REPLAY_TIMEOUT = 300.0
_RUN_TIMEOUT = 6 * 3600.0
_SCOPES = ("ingest", "read", "admin")
_REVISION = re.compile(r"[0-9a-f]{4,64}")


class Provider:
    """The provider the dashboard's jobs call; its key stays in this object and in the
    environment of the jobs' processes."""

    def __init__(self, api_key: str | None = None, base_url: str | None = None) -> None:
        self._api_key = api_key
        self._base_url = base_url

    @classmethod
    def from_environment(cls) -> Provider:
        return cls(resolve("provider_api_key"), resolve("provider_base_url"))

    @property
    def configured(self) -> bool:
        return bool(self._api_key)

    def __repr__(self) -> str:  # never the key, even in a traceback's locals
        return f"Provider(configured={self.configured})"

    def environment(self, url: str, key: str) -> dict[str, str]:
        """A job's environment: the provider's key and address, this server and the job's key
        (none of the server's own secrets)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMTAP_", "OPENAI_"))}
        env.update(OPENAI_API_KEY=self._api_key or "", LLMTAP_URL=url, LLMTAP_API_KEY=key)
        if self._base_url:
            env["OPENAI_BASE_URL"] = self._base_url
        return env

    def scrub(self, text: str) -> str:
        return text.replace(self._api_key, "<provider key>") if self._api_key else text


@contextmanager
def _job_key(store: Store, project: str, project_id: int) -> Iterator[str]:
    """A key of the project for one job (environment ``dashboard``), revoked when it ends."""
    key = create_key(store, project, "dashboard", _SCOPES)
    key_id = next(k["id"] for k in store.list_keys(project_id) if k["prefix"] == key[:10])
    try:
        yield key
    finally:
        store.revoke_key(project_id, key_id)


def _own_url(request: Request) -> str:
    """This server as the job reaches it: the address the request came in on."""
    host, port = request.scope["server"]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


@contextmanager
def _template_file(text: str) -> Iterator[list[str]]:
    """``--template FILE`` for a template typed in a form (none: no option)."""
    if not text.strip():
        yield []
        return
    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        yield ["--template", file.name]


def _job(
    request: Request,
    project: str,
    project_id: int,
    command: list[str],
    template: str,
) -> subprocess.CompletedProcess[str]:
    """Run ``llmtap COMMAND...`` (its options, then ``--`` and its one argument: see
    ``_command``) as a job of the project, to its end (blocks)."""
    state = request.app.state
    with (
        _job_key(state.store, project, project_id) as key,
        _template_file(template) as option,
    ):
        name, *rest = command
        return subprocess.run(
            [sys.executable, "-m", "llmtap.cli", name, *option, *rest],
            env=state.provider.environment(_own_url(request), key),
            capture_output=True,
            text=True,
            timeout=_RUN_TIMEOUT if name == "test" else _REPLAY_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )


def _command(name: str, argument: str, options: list[str]) -> list[str]:
    """``llmtap NAME`` with ``options``, then its ``argument`` (an event id, a set's name:
    anyone's text) after ``--``, so that it is never read as an option."""
    return [name, *options, "--", argument]


def _failure(provider: Provider, done: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    return provider.scrub(lines[-1] if lines else f"exit status {done.returncode}")[:500]


def _ready(request: Request) -> Provider:
    provider: Provider = request.app.state.provider
    if not provider.configured:
        raise ApiError(
            400, "no model provider is configured for this server (LLMTAP_PROVIDER_API_KEY)"
        )
    return provider


def _text(form: Any, name: str, limit: int = 200) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


async def replay_form(request: Request) -> Response:
    """``POST /events/{id}/replay``: rerun the call with ``model`` and the ``template`` typed
    (each optional), and show both answers side by side."""
    form = await check_csrf(request)
    project, project_id = await may_change_tests(request, form)
    provider = _ready(request)
    event_id = request.path_params["event_id"]
    store = request.app.state.store
    event = await run_in_threadpool(query_event, store, project_id, project, event_id)
    if event.get("api") not in REPLAYED:
        raise ApiError(400, replay_refused(event))
    model = _text(form, "model")
    args = _command("replay", event_id, ["--json", *(["--model", model] if model else [])])
    template = form.get("template")
    done = await run_in_threadpool(
        _job, request, project, project_id, args, template if isinstance(template, str) else ""
    )
    if done.returncode != 0:
        raise ApiError(502, f"the replay failed: {_failure(provider, done)}")
    # Its last line: split at line feeds alone (a U+2028 in the answer is no line's end).
    replay = json.loads(done.stdout.strip().split("\n")[-1])
    data = {"project": project, "event": event, "replay": replay}
    projects = [{"name": project}]
    return await render_page(
        request, "replay.html", data, projects=projects, title=f"Replay of {event_id[:8]}"
    )


async def run_form(request: Request) -> Response:
    """``POST /testsets/{id}/run``: run the set with ``model`` and the ``template`` typed (each
    optional), at most ``max_cost`` USD, in the background; back to the set's page, where
    the run shows."""
    form = await check_csrf(request)
    project, project_id = await may_change_tests(request, form)
    provider = _ready(request)
    testset_id = int(request.path_params["testset_id"])
    store = request.app.state.store
    testset = None
    if testset_id < 2**63:
        testset = await run_in_threadpool(store.get_testset, project_id, testset_id)
    if testset is None:
        raise ApiError(404, f"no test set {testset_id} in project {project!r}")
    options = []
    model, cap = _text(form, "model"), _text(form, "max_cost", 30)
    if model:
        options += ["--model", model]
    if cap:
        try:
            if not 0 <= float(cap) < float("inf"):
                raise ValueError(cap)
        except ValueError:
            raise ApiError(400, f"max_cost: expected a number of USD, got {cap!r}") from None
        options += ["--max-cost", cap]
    template = form.get("template")
    typed = template if isinstance(template, str) else ""
    revision = _text(form, "revision", 64)
    if revision:
        if typed.strip():
            raise ApiError(400, "choose a stored revision or type a template, not both")
        if not _REVISION.fullmatch(revision):
            raise ApiError(400, f"revision: expected a template revision's id, got {revision!r}")
        options += ["--revision", revision]

    try:  # what would stop the job before its run starts, said now (see Runner.evaluators)
        await run_in_threadpool(stored_evaluators, testset["evaluators"])
    except ValueError as exc:
        raise ApiError(400, f"this set cannot run from the dashboard: {exc}") from None
    failures = request.app.state.run_failures
    failures.pop((project_id, testset_id), None)
    command = _command("test", testset["name"], options)

    def job() -> None:
        try:
            done = _job(request, project, project_id, command, typed)
            # A run that started says "run ID" first; its end is its status (exit 1: it missed
            # a threshold or its cap). One that never started, or crashed, is kept for the
            # set's page.
            started = any(line.startswith("run ") for line in done.stderr.splitlines())
            ran = started and done.returncode in (0, 1)
            failed = None if ran else _failure(provider, done)
        except Exception as exc:  # the server goes on
            failed = f"{type(exc).__name__}"
            log.warning("a dashboard test run of set %s could not run", testset_id, exc_info=True)
        if failed:
            failures[project_id, testset_id] = failed

    threading.Thread(target=job, name="llmtap-test-run", daemon=True).start()
    return back_to(f"/testsets/{testset_id}", project)
