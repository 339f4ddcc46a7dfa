"""Evaluators: each scores a new output from 0 to 1, with a short reason.

An evaluator is named by a spec string, as ``--evaluator`` takes it:

==========================  ===========================================================
``exact``                   the output is the expected output, character for character
``normalized``              the same after Unicode normalisation, case folding, collapsed
                            whitespace, and without surrounding quotes and final stops
``contains``                the expected output appears in the output (normalised)
``regex:PATTERN``           the output matches ``PATTERN`` (a search, with the ``regex``
                            package's syntax, which takes ``re``'s; at most a second a
                            case, off the event loop)
``json``                    the output is valid JSON
``json_schema:SCHEMA``      the output is JSON valid against ``SCHEMA`` (a file, or the
                            schema itself, inline)
``numeric[:TOL]``           the first number of the output is within ``TOL`` (relative,
                            default 0.01) of the expected output's
``embeddings[:MODEL]``      cosine similarity of the two texts' embeddings, through the
                            provider's embeddings endpoint (passes at 0.8)
``judge[:RUBRIC]``          a model grades the output against the rubric (text, or
                            ``@FILE``); its prompt and answer are kept with the score
``python:MODULE:FUNCTION``  ``FUNCTION(output, case)`` returns a score (a number, a bool,
                            ``(score, reason)`` or ``{"score", "reason"}``)
==========================  ===========================================================

A test set keeps the evaluators it runs with by default on the server, where anyone with the
project's admin key can write them. Those *stored* specs may neither read a file nor run code
on the machine that runs the set (a colleague's laptop, CI, the server's own dashboard runs):
``python:``, ``judge:@FILE`` and ``json_schema:FILE`` are refused there, and taken only from
the command line (``--evaluator``), where the one running the set writes them. A stored
pattern can still be one that backtracks for hours on some output: each search stops after
``REGEX_SECONDS`` (that case's error, the run goes on) and runs in a thread, so the other
cases go on meanwhile. A schema's references stay inside it (``#...``: nothing is fetched, no
file read), and its check stops after ``SCHEMA_SECONDS`` (a schema whose alternatives point
at each other twice over takes twice as long at each level), also in a thread.

What is expected comes with the case: a better response, or the original output rated well;
a case rated badly with no better response expects only that the output *differs* from the
original (comparing evaluators then score the difference); a case with neither has nothing
to compare with (those evaluators skip it).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import math
import re
import threading
import time
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "EVALUATORS",
    "Context",
    "Evaluator",
    "Score",
    "normalize",
    "parse_evaluator",
    "stored_evaluators",
]

MAX_REASON = 300
# How long a regex evaluator may search one output (see the module's doc).
REGEX_SECONDS = 1.0
# How long a JSON Schema may take to check one output.
SCHEMA_SECONDS = 1.0


@dataclass
class Score:
    """An evaluator's verdict: ``score`` from 0 to 1 (None: not applicable, or failed, then
    ``error`` says why), whether it passes, why, and what else is worth keeping (a judge's
    prompt and answer)."""

    score: float | None
    reason: str
    passed: bool | None = None
    error: str | None = None
    detail: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "score": self.score,
            "passed": self.passed,
            "reason": self.reason[:MAX_REASON],
        }
        if self.error:
            out["error"] = self.error[:MAX_REASON]
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass
class Context:
    """What the model-backed evaluators call through: an ``llmtap.AsyncClient`` (so the judge's
    and the embeddings' calls are recorded too), the judge's model, and what tags those calls."""

    client: Any = None
    judge_model: str = "gpt-4o-mini"
    embeddings_model: str = "text-embedding-3-small"
    tags: dict[str, Any] = field(default_factory=dict)
    # Costs of the evaluators' own calls, added to the run's spend by the runner.
    on_usage: Callable[[str, Any], None] | None = None


# Quotes a model may wrap an answer in: ASCII, and the typographic ones (by code point).
_QUOTES = "\"'` \u201c\u201d\u2018\u2019"


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = " ".join(text.split())
    return text.strip(_QUOTES).rstrip(".!?\u3002 ")


# Case -> (the text to compare with, whether a match is a failure): see the module's doc.
def _reference(case: dict[str, Any]) -> tuple[str | None, bool]:
    kind = case.get("expected_kind")
    if kind == "differ":
        return case.get("original_output"), True
    return (case.get("expected") if kind != "none" else None), False


Check = Callable[["Evaluator", Context, dict[str, Any], str], Awaitable[Score]]


@dataclass
class Evaluator:
    spec: str
    name: str
    threshold: float
    check: Check
    argument: str = ""
    compare: bool = True  # needs an expected output
    extra: Any = None

    @property
    def paid(self) -> bool:
        """Whether scoring calls the provider (and so costs): a judge, embeddings."""
        return self.name in _PAID_CALLS

    def calls(self, ctx: Context, case: dict[str, Any], output: str) -> list[tuple[str, str, int]]:
        """The provider calls scoring ``output`` would make, as (model, the text sent, the
        tokens of the answer): none for the evaluators that score alone, or when there is
        nothing to compare with. What the run's cost estimate counts, before any output
        exists (``output``: a guess)."""
        reference = _reference(case)[0]
        if not self.paid or (self.compare and reference is None):
            return []
        return [_PAID_CALLS[self.name](self, ctx, case, output, reference or "")]

    async def __call__(self, ctx: Context, case: dict[str, Any], output: str) -> Score:
        if self.compare:
            reference, negate = _reference(case)
            if reference is None:
                return Score(None, "no expected output to compare with")
            case = {**case, "_reference": reference}
        else:
            negate = False
        try:
            score = await self.check(self, ctx, case, output)
        except Exception as exc:  # a judge's nonsense, a user's function raising: this case's
            kind = type(exc).__name__
            return Score(None, f"{self.name} failed", False, f"{kind}: {exc}")
        if score.score is not None and negate:
            score = Score(1.0 - score.score, f"must differ from the original; {score.reason}")
        if score.score is not None:
            score.score = min(1.0, max(0.0, float(score.score)))
            score.passed = score.score >= self.threshold
        return score


def _verdict(ok: bool, yes: str, no: str) -> Score:
    return Score(1.0 if ok else 0.0, yes if ok else no)


async def _exact(ev: Evaluator, ctx: Context, case: dict[str, Any], output: str) -> Score:
    return _verdict(output == case["_reference"], "identical", "not identical")


async def _normalized(ev: Evaluator, ctx: Context, case: dict[str, Any], output: str) -> Score:
    same = normalize(output) == normalize(case["_reference"])
    return _verdict(same, "same once normalised", "differs once normalised")


async def _contains(ev: Evaluator, ctx: Context, case: dict[str, Any], output: str) -> Score:
    found = normalize(case["_reference"]) in normalize(output)
    return _verdict(found, "contains the expected text", "does not contain the expected text")


async def _regex(ev: Evaluator, ctx: Context, case: dict[str, Any], output: str) -> Score:
    try:
        # ``concurrent``: the search lets go of the GIL, so the event loop's thread runs on.
        match = await asyncio.to_thread(
            ev.extra.search, output, concurrent=True, timeout=REGEX_SECONDS
        )
    except TimeoutError:
        raise TimeoutError(f"{ev.argument} searched for more than {REGEX_SECONDS:g} s") from None
    found = match is not None
    return _verdict(found, f"matches {ev.argument}", f"does not match {ev.argument}")


def _load_json(output: str) -> tuple[Any, str | None]:
    try:
        return json.loads(output), None
    except ValueError as exc:
        return None, f"not JSON: {exc}"
    except RecursionError:
        return None, "JSON nested deeper than can be read"


async def _json(ev: Evaluator, ctx: Context, case: dict[str, Any], output: str) -> Score:
    _, problem = _load_json(output)
    return _verdict(problem is None, "valid JSON", problem or "")


async def _json_schema(ev: Evaluator, ctx: Context, case: dict[str, Any], output: str) -> Score:
    from referencing.exceptions import Unresolvable

    document, problem = _load_json(output)
    if problem:
        return Score(0.0, problem)

    def first_error() -> Any:
        _deadline.at = time.monotonic() + SCHEMA_SECONDS
        return next(iter(ev.extra.iter_errors(document)), None)

    try:
        error = await asyncio.to_thread(first_error)
    except _OutOfTime:
        raise TimeoutError(f"the schema took more than {SCHEMA_SECONDS:g} s to check") from None
    except Unresolvable as exc:
        raise ValueError(f"the schema refers to {exc.ref!r}, which is not in it") from None
    except RecursionError:
        raise ValueError("the schema or the output nests deeper than can be checked") from None
    if error is None:
        return Score(1.0, "valid against the schema")
    where = "/".join(str(p) for p in error.absolute_path) or "the document"
    return Score(0.0, f"{where}: {error.message}")


_NUMBER = re.compile(r"[-+]?(?:\d+(?:[.,]\d+)?|\.\d+)(?:[eE][-+]?\d+)?")


def _spelled(text: str) -> str | None:
    match = _NUMBER.search(text.replace("\u2212", "-"))
    return None if match is None else match.group(0).replace(",", ".")


def _number(text: str) -> float | None:
    spelled = _spelled(text)
    return None if spelled is None else float(spelled)


async def _numeric(ev: Evaluator, ctx: Context, case: dict[str, Any], output: str) -> Score:
    got, want = _number(output), _number(case["_reference"])
    if want is None:
        return Score(None, "the expected output holds no number")
    if got is None:
        return Score(0.0, "the output holds no number")
    if not (math.isfinite(got) and math.isfinite(want)):
        # Past a float (1e999): equal only as spelled alike.
        same = _spelled(output) == _spelled(case["_reference"])
        return _verdict(same, "the same number, past a float", "numbers past a float differ")
    error = abs(got - want) / max(abs(want), 1e-12)
    within = error <= ev.extra
    # Within tolerance: 1; beyond, the score falls off with the relative error.
    score = 1.0 if within else max(0.0, 1.0 - error)
    return Score(score, f"{got:g} vs {want:g} ({error:.2%} off)")


async def _embeddings(ev: Evaluator, ctx: Context, case: dict[str, Any], output: str) -> Score:
    model = ev.argument or ctx.embeddings_model
    answer = await ctx.client.embeddings.create(
        model=model,
        input=[output, case["_reference"]],
        llmtap={"prompt_template_name": "llmtap-eval-embeddings", "attributes": ctx.tags},
    )
    if ctx.on_usage:
        ctx.on_usage(model, answer.usage)
    a, b = (item.embedding for item in sorted(answer.data, key=lambda d: d.index))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    similarity = sum(x * y for x, y in zip(a, b, strict=True)) / norm if norm else 0.0
    return Score(similarity, f"cosine similarity {similarity:.3f}")


_JUDGE_SYSTEM = (
    "You grade an AI assistant's answer against a rubric. Reply with JSON only: "
    '{"score": a number from 0 to 1, "reason": "one short sentence"}.'
)
_JSON_OBJECT = re.compile(r"\{.*\}", re.S)


def _judge_prompt(ev: Evaluator, case: dict[str, Any], output: str) -> str:
    rubric = ev.extra or "The answer is correct, helpful and matches the expected answer."
    reference, rejected = _reference(case)
    said = "A rejected answer (a good one differs)" if rejected else "Expected answer"
    return (
        f"Rubric: {rubric}\n\nQuestion or input:\n{json.dumps(case.get('input'))}\n\n"
        + (f"{said}:\n{reference}\n\n" if reference else "")
        + f"Answer to grade:\n{output}"
    )


async def _judge(ev: Evaluator, ctx: Context, case: dict[str, Any], output: str) -> Score:
    prompt = _judge_prompt(ev, case, output)
    messages = [{"role": "system", "content": _JUDGE_SYSTEM}, {"role": "user", "content": prompt}]
    answer = await ctx.client.chat.completions.create(
        model=ctx.judge_model,
        messages=messages,
        temperature=0,
        llmtap={"prompt_template_name": "llmtap-eval-judge", "attributes": ctx.tags},
    )
    if ctx.on_usage:
        ctx.on_usage(ctx.judge_model, answer.usage)
    text = answer.choices[0].message.content or ""
    detail = {"prompt": prompt, "answer": text}
    found = _JSON_OBJECT.search(text)
    try:
        verdict = json.loads(found.group(0)) if found else None
        if not isinstance(verdict, dict):
            raise ValueError(text)
        score = float(verdict["score"])
        if not 0 <= score <= 1:
            raise ValueError(score)
    except (ValueError, TypeError, KeyError, RecursionError):
        return Score(None, "the judge's answer is not a verdict", False, text[:200], detail)
    return Score(score, str(verdict.get("reason") or "")[:MAX_REASON], detail=detail)


async def _python(ev: Evaluator, ctx: Context, case: dict[str, Any], output: str) -> Score:
    public = {k: v for k, v in case.items() if not k.startswith("_")}
    got = await asyncio.to_thread(ev.extra, output, public)
    if isinstance(got, dict):
        return Score(float(got["score"]), str(got.get("reason", "")))
    if isinstance(got, tuple):
        return Score(float(got[0]), str(got[1]))
    if isinstance(got, bool | int | float):
        return Score(float(got), f"{ev.argument} returned {got}")
    raise TypeError(f"{ev.argument} returned {type(got).__name__}, not a score")


def _compile_regex(argument: str) -> Any:
    import regex  # the server extra's, as this module's other evaluators' libraries

    return regex.compile(argument)


class _OutOfTime(Exception):
    """A schema's check ran past ``SCHEMA_SECONDS``."""


_deadline = threading.local()  # the check's end, per thread (each check runs in one)


def _timed(check: Callable[..., Any]) -> Callable[..., Any]:
    """A schema keyword's check that first looks at the clock: a check is a tree of them."""

    def keyword(validator: Any, value: Any, instance: Any, schema: Any) -> Any:
        if time.monotonic() > _deadline.at:
            raise _OutOfTime
        return check(validator, value, instance, schema)

    return keyword


def _outward_refs(node: Any) -> list[str]:
    """The references of a schema that point outside it (anything but ``#...``)."""
    out, stack = [], [node]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("$ref", "$dynamicRef") and not (
                    isinstance(value, str) and value.startswith("#")
                ):
                    out.append(str(value))
                stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
    return out


def _schema(argument: str) -> Any:
    from jsonschema import Draft202012Validator
    from jsonschema.validators import extend, validator_for
    from referencing import Registry

    text = argument if argument.lstrip().startswith("{") else Path(argument).read_text()
    schema = json.loads(text)
    cls = validator_for(schema, default=Draft202012Validator)
    cls.check_schema(schema)
    outward = _outward_refs(schema)
    if outward:
        # jsonschema would fetch them (any URL, file:// too) on the machine running the set.
        raise ValueError(f"a schema's references stay inside it (#...), not {outward[0]!r}")
    timed = extend(cls, {name: _timed(check) for name, check in cls.VALIDATORS.items()})
    return timed(schema, registry=Registry())  # an empty registry: nothing is retrieved


def _tolerance(argument: str) -> float:
    tolerance = float(argument or "0.01")
    if not 0 <= tolerance < math.inf:
        raise ValueError("a tolerance is a number from 0 up")
    return tolerance


def _machine_access(name: str, argument: str) -> str | None:
    """What evaluator ``name`` with ``argument`` would do on the machine that runs it beyond
    scoring: read a file or run code; None when nothing."""
    if name == "python":
        return "runs code"
    if (name == "judge" and argument.startswith("@")) or (
        name == "json_schema" and not argument.lstrip().startswith("{")
    ):
        return "reads a file"
    return None


def _rubric(argument: str) -> str:
    return Path(argument[1:]).read_text() if argument.startswith("@") else argument


def _function(argument: str) -> Any:
    module, _, name = argument.rpartition(":")
    if not module:
        raise ValueError("python evaluators are named python:MODULE:FUNCTION")
    function = getattr(importlib.import_module(module), name)
    if not callable(function):
        raise ValueError(f"{argument} is not a function")
    return function


def _judge_call(
    ev: Evaluator, ctx: Context, case: dict[str, Any], output: str, reference: str
) -> tuple[str, str, int]:
    # Its answer: a score and a sentence.
    return ctx.judge_model, _JUDGE_SYSTEM + _judge_prompt(ev, case, output), 40


def _embeddings_call(
    ev: Evaluator, ctx: Context, case: dict[str, Any], output: str, reference: str
) -> tuple[str, str, int]:
    return ev.argument or ctx.embeddings_model, output + reference, 0


# The evaluators that call the provider: name -> the call scoring an output makes.
_PAID_CALLS: dict[str, Callable[..., tuple[str, str, int]]] = {
    "judge": _judge_call,
    "embeddings": _embeddings_call,
}

# name -> (check, pass threshold, compares with the expected output, argument parser)
EVALUATORS: dict[str, tuple[Check, float, bool, Callable[[str], Any] | None]] = {
    "exact": (_exact, 1.0, True, None),
    "normalized": (_normalized, 1.0, True, None),
    "contains": (_contains, 1.0, True, None),
    "regex": (_regex, 1.0, False, _compile_regex),
    "json": (_json, 1.0, False, None),
    "json_schema": (_json_schema, 1.0, False, _schema),
    "numeric": (_numeric, 1.0, True, _tolerance),
    "embeddings": (_embeddings, 0.8, True, None),
    "judge": (_judge, 0.5, False, _rubric),
    "python": (_python, 0.5, False, _function),
}
_ALIASES = {"normalised": "normalized", "similarity": "embeddings"}


def parse_evaluator(spec: str, stored: bool = False) -> Evaluator:
    """The evaluator ``spec`` names (see the module's doc); a ValueError saying what is wrong.
    ``stored``: a spec a test set keeps on the server, not one the caller gave (see above)."""
    name, _, argument = spec.partition(":")
    name = _ALIASES.get(name.strip(), name.strip())
    if name not in EVALUATORS:
        raise ValueError(f"unknown evaluator {name!r}: expected one of {', '.join(EVALUATORS)}")
    access = _machine_access(name, argument)
    if stored and access:
        raise ValueError(
            f"evaluator {spec[:100]!r} {access} on the machine that runs the set: a test set's"
            " stored evaluators cannot; give it with --evaluator on the command line"
        )
    check, threshold, compare, parse = EVALUATORS[name]
    if name in ("regex", "json_schema", "python") and not argument:
        raise ValueError(f"the {name} evaluator needs an argument: {name}:...")
    try:
        extra = parse(argument) if parse else None
    except Exception as exc:
        raise ValueError(f"evaluator {spec!r}: {exc}") from None
    return Evaluator(spec, name, threshold, check, argument, compare, extra)


def stored_evaluators(specs: list[str]) -> list[Evaluator]:
    """The evaluators of specs a test set keeps on the server (see the module's doc); a
    ValueError for the first that cannot be used."""
    return [parse_evaluator(spec, stored=True) for spec in specs]
