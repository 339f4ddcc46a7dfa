"""The runner: a test set through a template revision and a model, case by case.

Each case's parameters fill the chosen template (a new one, or the case's own); the call goes
through ``llmtap.AsyncClient`` (so it is recorded, tagged ``llmtap_run`` and ``llmtap_case``,
under an event id derived from the run and the case), at most ``concurrency`` at a time; the
evaluators score the output, and the original output with those of them that cost nothing
(the baseline). Results reach the server in batches as they come.

Before the first call the run's cost is estimated (prompt and expected output, in tokens, at
the prices the server prices events with; a judge's and the embeddings' calls included); with
``max_cost_usd`` no case starts that could take the spend past it. A case that cannot run (a
parameter its template lacks, a provider error or timeout, a judge answering nonsense) gets its
own error; the run goes on. A run interrupted is resumed by its id: cases with a result are
skipped, and a case whose call came back but whose result was not stored is scored from what
came back, never called (billed) again: from the run's local journal (``journal``: each answer
is written there the moment it comes back), else from the call's event recorded on the server
(a resume on another machine). Only a call that the interruption cut off in flight, before its
answer came back, is made again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

import openai

from ..sdk._templates import TemplateChat, TemplateText, placeholders
from ..wire import MAX_TEXT_CHARS, parse_instant, replace_surrogates
from ._gc import run_collection
from .api import TestsApi
from .evaluators import Context, Evaluator, Score, parse_evaluator, stored_evaluators
from .journal import Journal
from .results import compare

__all__ = [
    "Pricing",
    "RunOptions",
    "Runner",
    "call_model",
    "estimate_tokens",
    "prepare",
    "sampling_settings",
    "uncapped",
]

# Results are sent when this many wait, or this often.
_BATCH = 100
_SEND_EVERY = 0.25
# A run is planned and then run at once: the prices read for its plan serve its run too.
_PRICES_FOR = 60.0
_RUN_NAMESPACE = uuid.UUID("6f1c1d0e-4c1b-4d8e-9a57-1a7e5f0c2b11")
Progress = Callable[[int, int, dict[str, Any]], None]


@dataclass
class RunOptions:
    """How to run a set. ``template``: a JSON list of chat messages or a text template (None:
    each case's own); ``model``: None keeps each case's."""

    model: str | None = None
    template: list[dict[str, Any]] | str | None = None
    template_label: str | None = None  # the file or revision it came from, for the record
    evaluators: list[str] | None = None  # the caller's own; None: the set's
    # Evaluators read from the server (a resumed run's record): treated as the set's are.
    stored_evaluators: list[str] | None = None
    concurrency: int = 8
    max_cost_usd: float | None = None
    # Call settings (temperature, max_tokens...) over each case's own, as the request's body.
    settings: dict[str, Any] = field(default_factory=dict)
    judge_model: str | None = None
    timeout: float = 60.0
    max_retries: int = 2
    journal_dir: str | None = None  # where the run's journal is kept (default: the user's cache)


def estimate_tokens(value: Any) -> int:
    """A rough token count of text or JSON (four characters a token), for the estimate only."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return max(1, len(text) // 4)


def _usage(usage: Any) -> dict[str, int]:
    if usage is None:
        return {}
    prompt = getattr(usage, "prompt_tokens", None) or 0
    details = getattr(usage, "prompt_tokens_details", None)
    out_details = getattr(usage, "completion_tokens_details", None)
    return {
        "input_tokens": prompt,
        "output_tokens": getattr(usage, "completion_tokens", None) or 0,
        "cached_tokens": getattr(details, "cached_tokens", None) or 0,
        "reasoning_tokens": getattr(out_details, "reasoning_tokens", None) or 0,
    }


class Pricing:
    """Prices as the server prices events: the project's overrides, else genai-prices."""

    def __init__(self, overrides: list[dict[str, Any]]) -> None:
        self._overrides = [
            {**o, "since_us": _since_us(o.get("since"))} for o in overrides if o.get("model")
        ]

    def __call__(self, model: str, usage: dict[str, int]) -> float | None:
        """The cost, or None when unknown: a model name or a usage (negative, from an odd
        provider) the price library chokes on costs a case its price, not the run."""
        from ..server.prices import cost

        try:
            # Runs call OpenAI's API (the SDK's): its prices first, as the server's for the
            # events the SDK records (an embeddings model has none without a provider).
            return cost(model, "openai", usage, datetime.now(timezone.utc), self._overrides)
        except Exception:
            return None


def _since_us(since: str | None) -> int:
    if not since:
        return 0
    return int(parse_instant(since).timestamp() * 1_000_000)


@dataclass
class _Call:
    case: dict[str, Any]
    model: str | None = None
    prompt: Any = None  # chat messages (TemplateChat) or a prompt (TemplateText)
    error: str | None = None
    estimate: float | None = None
    settings: dict[str, Any] = field(default_factory=dict)


# The settings a call keeps from what a key stored (a case's: an event's request, an imported
# line; a resumed run's record): how the model samples and answers, never what multiplies the
# bill (``n``, ``best_of``, a pricier ``service_tier``) or changes where the answer goes
# (``stream``). The caller's own --setting values are taken as they are.
_SAMPLING = frozenset(
    {
        *("temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "seed"),
        *("presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs"),
        *("response_format", "tools", "tool_choice", "parallel_tool_calls", "functions"),
        *("function_call", "reasoning_effort", "verbosity", "user", "suffix", "echo"),
    }
)


def sampling_settings(settings: Any) -> dict[str, Any]:
    """Of stored ``settings``, those of sampling (``_SAMPLING``)."""
    if not isinstance(settings, dict):
        return {}
    return {k: v for k, v in settings.items() if k in _SAMPLING}


def _openai_roles(template: list[Any]) -> list[Any]:
    """A chat template with Libretto's role ``ai`` (its templates' word for the assistant)
    as OpenAI's ``assistant``, which the API takes."""
    return [
        {**m, "role": "assistant"} if isinstance(m, dict) and m.get("role") == "ai" else m
        for m in template
    ]


def prepare(
    case: dict[str, Any],
    options: RunOptions,
    pricing: Pricing,
    evaluators: Sequence[Evaluator] = (),
) -> _Call:
    """The call ``case`` makes under ``options`` (the template filled with the case's
    parameters), or why it cannot be made; with its estimated cost, the calls ``evaluators``
    make to score it included (a judge's, the embeddings')."""
    call = _Call(case, options.model or case.get("model"))
    call.settings = {**sampling_settings(case.get("settings")), **options.settings}
    template = options.template if options.template is not None else case.get("template")
    params = case.get("template_params") or {}
    if call.model is None:
        call.error = "no model: the case has none, give one (--model)"
        return call
    try:
        if template is None:  # imported without its template: the prompt as it was
            if case.get("input") is None:
                raise ValueError("the case has neither a template nor an input")
            call.prompt = case["input"]
        else:
            missing = sorted(placeholders(template) - set(params))
            if missing:
                raise ValueError(f"the case has no parameter {', '.join(missing)}")
            call.prompt = (
                TemplateText(template, params)
                if isinstance(template, str)
                else TemplateChat(_openai_roles(template), params)
            )
    except (ValueError, TypeError, AttributeError) as exc:
        call.error = f"cannot fill the template: {exc}"
        return call
    # The new output is not known yet: as long as what is expected, or the original.
    expected = case.get("expected") or case.get("original_output") or ""
    ctx = _context(options)
    priced = [
        (call.model, estimate_tokens(call.prompt), max(16, estimate_tokens(expected))),
        *(
            (model, estimate_tokens(sent), answer)
            for ev in evaluators
            for model, sent, answer in ev.calls(ctx, case, expected)
        ),
    ]
    costs = [
        pricing(model, {"input_tokens": tokens_in, "output_tokens": tokens_out})
        for model, tokens_in, tokens_out in priced
    ]
    # Unknown when any part is: a cost cap cannot stand on half an estimate.
    call.estimate = None if None in costs else sum(c for c in costs if c is not None)
    return call


def uncapped(options: RunOptions, calls: list[_Call]) -> str | None:
    """Why ``options``' cost cap cannot hold for ``calls`` (a case of a model without a
    price, which the cap would count as free), or None."""
    unpriced = sum(1 for c in calls if c.estimate is None and c.error is None)
    if options.max_cost_usd is None or not unpriced:
        return None
    return f"a cost cap needs a price for every model called: {unpriced} case(s) have none"


def _context(options: RunOptions, **given: Any) -> Context:
    """What the evaluators call the provider with, under ``options``."""
    return Context(judge_model=options.judge_model or options.model or "gpt-4o-mini", **given)


class Runner:
    """Runs test sets of the project ``api`` reads, calling models with ``provider`` (the
    arguments of ``openai.AsyncOpenAI``: ``api_key``, ``base_url``...) through
    ``llmtap.AsyncClient`` configured with ``llmtap`` (its ``Config``, as a dict)."""

    def __init__(
        self, api: TestsApi, provider: dict[str, Any], llmtap: dict[str, Any] | None = None
    ) -> None:
        self.api = api
        self.provider = provider
        self.llmtap = llmtap or {}
        self._pricing: tuple[float, Pricing] | None = None

    def _prices(self) -> Pricing:
        """The project's prices, read from the server at most once a minute."""
        now = time.monotonic()
        if self._pricing is None or now - self._pricing[0] > _PRICES_FOR:
            self._pricing = (now, Pricing(self.api.prices().get("overrides", [])))
        return self._pricing[1]

    # -- planning --------------------------------------------------------------------------

    def plan(self, testset: dict[str, Any], options: RunOptions) -> list[_Call]:
        """Each case's call, or why it cannot be made, with its estimated cost."""
        pricing = self._prices()
        try:
            evaluators = self.evaluators(testset, options)
        except ValueError:  # said by evaluators(), before a run can start
            evaluators = []
        return [prepare(case, options, pricing, evaluators) for case in testset["cases"]]

    def evaluators(self, testset: dict[str, Any], options: RunOptions) -> list[Evaluator]:
        """The run's evaluators: the caller's (``options``), else the set's own, which may
        neither read files nor run code here (see ``evals.evaluators``). A ValueError says
        what cannot be used."""
        if options.evaluators:
            return [parse_evaluator(s) for s in options.evaluators]
        return stored_evaluators(options.stored_evaluators or testset["evaluators"])

    # -- running ---------------------------------------------------------------------------

    def start(self, testset: dict[str, Any], options: RunOptions, calls: list[_Call]) -> str:
        """Record a new run of ``testset``; its id. A ValueError when the run's cost cap
        cannot hold (``uncapped``)."""
        refused = uncapped(options, calls)
        if refused:
            raise ValueError(refused)
        run_id = uuid.uuid4().hex[:12]
        known = [c.estimate for c in calls if c.estimate is not None]
        config = {
            "model": options.model,
            "template": options.template,
            "template_label": options.template_label,
            "evaluators": options.evaluators or testset["evaluators"],
            "concurrency": options.concurrency,
            "max_cost_usd": options.max_cost_usd,
            "settings": options.settings,
            "estimate_usd": sum(known) if known else None,
            "unpriced_cases": sum(1 for c in calls if c.estimate is None and c.error is None),
        }
        self.api.create_run(run_id, testset["id"], config)
        return run_id

    def run(
        self,
        testset: dict[str, Any],
        options: RunOptions,
        calls: list[_Call],
        run_id: str,
        progress: Progress | None = None,
        resume: bool = False,
    ) -> dict[str, Any]:
        """Run ``run_id`` (``resume``: one interrupted before); its view against the original
        outputs. The run has an event loop of its own, and the garbage collector its setting
        for a run (``_gc``); ``arun`` runs in the caller's loop (a server's) as it is."""
        with run_collection():
            return asyncio.run(self.arun(testset, options, calls, run_id, progress, resume))

    async def arun(
        self,
        testset: dict[str, Any],
        options: RunOptions,
        calls: list[_Call],
        run_id: str,
        progress: Progress | None = None,
        resume: bool = False,
    ) -> dict[str, Any]:
        import llmtap

        evaluators = self.evaluators(testset, options)
        journal = Journal(
            str(self.llmtap.get("url") or ""),
            self.llmtap.get("api_key"),
            run_id,
            options.journal_dir,
        )
        done: set[Any] = set()  # a new run has no results yet
        recorded: dict[str, dict[str, Any]] = {}
        spent = 0.0  # before this part of the run: it counts towards the cost cap too
        if resume:
            stored = await asyncio.to_thread(self.api.run, run_id)
            done = {r["case_id"] for r in stored["results"]}
            spent = sum(r.get("cost_usd") or 0.0 for r in stored["results"])
            recorded = await asyncio.to_thread(self._recorded, run_id)
            answers = await asyncio.to_thread(journal.read)
            recorded.update(answers)  # the journal knows the usage too: preferred
        todo = [c for c in calls if c.case["id"] not in done]
        # Scored before the interruption, not stored yet: sent as they are (a judge not paid
        # for again).
        scored = await asyncio.to_thread(journal.results) if resume else {}
        ready = [scored[str(c.case["id"])] for c in todo if str(c.case["id"]) in scored]
        todo = [c for c in todo if str(c.case["id"]) not in scored]
        spent += sum(r.get("cost_usd") or 0.0 for r in ready)
        # Said while the first cases are under way; its answer is awaited when they are done.
        running = asyncio.create_task(asyncio.to_thread(self.api.set_run_status, run_id, "running"))
        client = llmtap.AsyncClient(
            **self.provider,
            timeout=options.timeout,
            max_retries=options.max_retries,
            llmtap=self.llmtap,
        )
        pricing = await asyncio.to_thread(self._prices)
        state = _State(len(calls), len(done) + len(ready), options.max_cost_usd)
        state.spent = spent
        state.pending = ready
        ctx = _context(options, client=client, tags={"llmtap_run": run_id})
        queue: asyncio.Queue[_Call] = asyncio.Queue()
        for call in todo:
            queue.put_nowait(call)

        async def worker() -> None:
            while not queue.empty() and not state.stopped:
                call = queue.get_nowait()
                estimate = call.estimate or 0.0
                if not state.reserve(estimate):
                    return
                result = await self._case(
                    client, ctx, evaluators, call, run_id, recorded, pricing, journal
                )
                state.settle(estimate, result.get("cost_usd") or 0.0)
                state.pending.append(result)
                if len(state.pending) >= _BATCH:
                    state.wake.set()
                state.done += 1
                if progress:
                    progress(state.done, state.total, result)

        sender = asyncio.create_task(self._send(run_id, state))
        workers = [asyncio.create_task(worker()) for _ in range(max(1, options.concurrency))]
        try:
            done, _ = await asyncio.wait(workers, return_when=asyncio.FIRST_EXCEPTION)
            if any(not t.cancelled() and t.exception() for t in done):
                # The others finish the case in hand (its answer journalled) and take no other.
                state.stopped = True
            await asyncio.gather(*workers)  # the first failure, raised
        finally:
            state.finished = True
            state.wake.set()
            # The last results and the calls' last events leave side by side.
            ended = await asyncio.gather(sender, client.aclose(), running, return_exceptions=True)
        failed = [e for e in ended if isinstance(e, BaseException)]
        if failed:
            raise failed[0]
        status = "stopped" if state.stopped else "finished"
        # Every answer is in a stored result now; a stopped run may still be resumed.
        journal.close(remove=status == "finished")
        if state.stored == len(calls):  # the server holds what was sent, nothing else
            # In the server's order, so that sums come out as the server's would.
            run = {"results": sorted(state.sent, key=lambda r: r["case_id"])}
        else:  # a resumed run, results stored before, a case not run: as the server has it
            run = await asyncio.to_thread(self.api.run, run_id)
        view = compare(testset, run)
        summary = {**view["summary"], "spent_usd": state.spent, "baseline": view["baseline"]}
        await asyncio.to_thread(self.api.set_run_status, run_id, status, summary)
        return {"run_id": run_id, "status": status, **view}

    def _recorded(self, run_id: str) -> dict[str, dict[str, Any]]:
        """The run's calls the server has recorded, by case id: a resumed run scores these
        rather than calling (and paying for) them again."""
        found = {}
        for event in self.api.events(attributes={"llmtap_run": run_id, "llmtap_role": "case"}):
            case = (event.get("attributes") or {}).get("llmtap_case")
            if event.get("status") == "ok" and case is not None:
                found[str(case)] = event
        return found

    async def _send(self, run_id: str, state: _State) -> None:
        """Send waiting results in batches until the run ends, then the rest."""
        while True:
            state.wake.clear()
            finished = state.finished
            if state.pending and (finished or len(state.pending) >= _BATCH or state.due()):
                # At most a batch at a time: a resume may bring thousands journalled.
                batch, state.pending = state.pending[:_BATCH], state.pending[_BATCH:]
                try:
                    batch, answer = await asyncio.to_thread(self._keep, run_id, batch)
                except BaseException:
                    # Results that cannot be kept: no further case is paid for. Those under
                    # way finish (journalled, so a resume does not pay for them again).
                    state.stopped = True
                    raise
                state.sent_at = time.monotonic()
                state.sent.extend(_as_stored(r) for r in batch)
                state.stored += int(answer.get("stored") or 0)
            if finished and not state.pending:
                return
            if not state.finished and len(state.pending) < _BATCH:
                # Woken by a full batch or the run's end, not by polling: the last results
                # leave the moment the last case is done.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(state.wake.wait(), _SEND_EVERY)

    def _keep(
        self, run_id: str, batch: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Store ``batch``: the results as sent, and the server's answer. Half a surrogate
        pair in a text (a provider's JSON escapes can send one, and a judge or a user's
        evaluator repeat it) is replaced first: the server keeps Unicode text only, and
        would refuse the whole batch."""
        batch = replace_surrogates(batch)
        return batch, self.api.add_results(run_id, batch)

    async def _case(
        self,
        client: Any,
        ctx: Context,
        evaluators: list[Evaluator],
        call: _Call,
        run_id: str,
        recorded: dict[str, dict[str, Any]],
        pricing: Pricing,
        journal: Journal,
    ) -> dict[str, Any]:
        """The case's result: its call (or its recorded event), scores, cost (with the
        evaluators' own calls), latency, error."""
        case = call.case
        event_id = str(uuid.uuid5(_RUN_NAMESPACE, f"{run_id}/{case['id']}"))
        result: dict[str, Any] = {"case_id": case["id"], "event_id": event_id, "scores": {}}
        if call.error:
            return {**result, "error": call.error, "passed": False}
        before = recorded.get(str(case["id"]))
        if before is not None and "usage" in before:  # journalled before an interruption
            output = before["output"]
            usage = before["usage"] or {}
            cost = pricing(call.model or "", usage) if usage else None
            result.update(latency_ms=before.get("latency_ms"), cost_usd=cost)
        elif before is not None:  # its event reached the server before an interruption
            output = before.get("output_text") or ""
            result.update(latency_ms=before.get("latency_ms"), cost_usd=before.get("cost_usd"))
        else:
            try:
                output, latency, usage = await self._call(client, call, run_id, event_id)
                # Journalled the moment it is back, before anything else can be cut off: a
                # resume scores it rather than paying for it again.
                journal.answered(case["id"], output, latency, usage)
            except openai.APIError as exc:
                return {**result, "error": f"provider: {type(exc).__name__}: {exc}"[:2000]}
            except Exception as exc:  # a case's odd input the SDK refuses: its error alone
                return {**result, "error": f"cannot call: {type(exc).__name__}: {exc}"[:2000]}
            cost = pricing(call.model or "", usage) if usage else None
            result.update(latency_ms=latency, cost_usd=cost)
        extras: list[float] = []

        def charge(model: str, usage: Any) -> None:
            extra = pricing(model, _usage(usage))
            if extra is not None:
                extras.append(extra)

        case_ctx = replace(ctx, on_usage=charge, tags={**ctx.tags, "llmtap_case": case["id"]})
        scores = [await ev(case_ctx, case, output) for ev in evaluators]
        kept = output[:MAX_TEXT_CHARS]  # what the server keeps of an output; scored whole
        result.update(output=kept, scores=_named(evaluators, scores), passed=_passed(scores))
        free = [ev for ev in evaluators if not ev.paid]
        original = case.get("original_output")
        if original is not None:
            verdicts = []
            if free:
                verdicts.append(_passed([await ev(case_ctx, case, original) for ev in free]))
            if len(free) < len(evaluators):
                verdicts.append(_rated_well(case))
            result["baseline_passed"] = _all_of(verdicts)
        if extras:  # the judge's and the embeddings' calls
            result["cost_usd"] = (result["cost_usd"] or 0.0) + sum(extras)
        pairs = zip(evaluators, scores, strict=True)
        errors = [f"{ev.spec}: {score.error}" for ev, score in pairs if score.error]
        if errors:
            result["error"] = "; ".join(errors)[:2000]
        if len(free) < len(evaluators):  # a judge or embeddings was paid for: kept (journal)
            journal.scored(case["id"], result)
        return result

    async def _call(
        self, client: Any, call: _Call, run_id: str, event_id: str
    ) -> tuple[str, float, dict[str, int]]:
        case = call.case
        tap = {
            "event_id": event_id,
            "prompt_template_name": case.get("prompt_template_name"),
            "attributes": {
                "llmtap_run": run_id,
                "llmtap_case": str(case["id"]),
                "llmtap_role": "case",
            },
        }
        return await call_model(client, call, tap)


async def call_model(
    client: Any, call: _Call, tap: dict[str, Any]
) -> tuple[str, float, dict[str, int]]:
    """Make ``call`` through ``client`` (an ``llmtap.AsyncClient``), recorded with ``tap``
    (its ``llmtap=`` parameters): the output text, the latency in ms, the usage."""
    extra = {"extra_body": call.settings} if call.settings else {}
    started = time.perf_counter()
    if isinstance(call.prompt, str):
        answer = await client.completions.create(
            model=call.model, prompt=call.prompt, llmtap=tap, **extra
        )
        output = answer.choices[0].text if answer.choices else ""
    else:
        answer = await client.chat.completions.create(
            model=call.model, messages=call.prompt, llmtap=tap, **extra
        )
        message = answer.choices[0].message if answer.choices else None
        output = (message.content if message else None) or ""
        if message is not None and not output and message.tool_calls:
            output = json.dumps(
                [
                    {"name": c.function.name, "arguments": c.function.arguments}
                    for c in message.tool_calls
                    if getattr(c, "function", None)
                ]
            )
    latency = (time.perf_counter() - started) * 1000
    return output, latency, _usage(answer.usage)


def _as_stored(result: dict[str, Any]) -> dict[str, Any]:
    """A result as the server stores and answers it (``TestsApi.run``)."""
    return {
        "case_id": result["case_id"],
        "scores": result.get("scores") or {},
        **{name: result.get(name) for name in _STORED},
    }


# A stored result's fields beside its case id and scores.
_STORED = ("output", "passed", "baseline_passed", "cost_usd", "latency_ms", "error", "event_id")


def _named(evaluators: list[Evaluator], scores: list[Score]) -> dict[str, Any]:
    return {ev.spec[:200]: s.as_dict() for ev, s in zip(evaluators, scores, strict=True)}


def _rated_well(case: dict[str, Any]) -> bool | None:
    """The production feedback's verdict on the case's original output, what the evaluators
    that cost stand on for the baseline: what the case expects says whether it was rated well
    (its original output expected), or badly (a better response, or anything different);
    None when the case has no rating to go by."""
    kind = case.get("expected_kind")
    if kind == "output":
        return True
    if kind in ("better", "differ"):
        return False
    return None


def _all_of(verdicts: list[bool | None]) -> bool | None:
    """Passed when every verdict passed, failed when one failed, else unknown."""
    if False in verdicts:
        return False
    return True if verdicts and None not in verdicts else None


def _passed(scores: list[Score]) -> bool | None:
    """A case passes when every evaluator that applies passes (and one applies)."""
    applied = [s for s in scores if s.score is not None or s.error]
    if not applied:
        return None
    return all(s.passed for s in applied)


class _State:
    """Counts and spend of a run in progress; the cost cap's bookkeeping."""

    def __init__(self, total: int, done: int, cap: float | None) -> None:
        self.total, self.done, self.cap = total, done, cap
        self.spent = 0.0
        self.reserved = 0.0
        self.stopped = False
        self.finished = False
        self.pending: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []  # as the server stores them
        self.stored = 0  # of those, how many the server took as new
        self.wake = asyncio.Event()  # a batch is full, or the run is over
        self.sent_at = time.monotonic()

    def reserve(self, estimate: float) -> bool:
        """Whether a case estimated at ``estimate`` may start; stops the run when not."""
        if self.cap is not None and self.spent + self.reserved + estimate > self.cap:
            self.stopped = True
            return False
        self.reserved += estimate
        return True

    def settle(self, estimate: float, actual: float) -> None:
        self.reserved -= estimate
        self.spent += actual

    def due(self) -> bool:
        return time.monotonic() - self.sent_at >= _SEND_EVERY
