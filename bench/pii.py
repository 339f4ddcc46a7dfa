"""Issue 7: how well and how fast ``redact_pii`` redacts.

Recall and precision per entity type on the labelled corpus of ``bench/pii_corpus.py``:
a labelled value is recalled when a span of the same type covers all of it; a predicted span
is correct when it overlaps a labelled value of its type. "leaks" counts labelled values still
readable, whole, in the redacted text. Then throughput (MB/s of text through ``redact_text``)
and the time redaction adds to one recorded call (``redact_event`` on a typical chat event; it
runs on the exporter's thread, so the caller's thread pays none of it).
"""

from __future__ import annotations

import copy
import time
from collections import Counter
from typing import Any

from llmtap.pii import ENTITY_TYPES, redact_event, redact_text
from llmtap.pii._engine import find

from ._harness import median
from .pii_corpus import generate

STRUCTURED = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IBAN_CODE",
              "IP_ADDRESS", "SECRET")  # fmt: skip
TARGET_RECALL, TARGET_PRECISION = 0.95, 0.90


def _score(samples: list[Any]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    gold: Counter[str] = Counter()
    recalled: Counter[str] = Counter()
    predicted: Counter[str] = Counter()
    correct: Counter[str] = Counter()
    leaks: Counter[str] = Counter()
    misses: list[str] = []
    for sample in samples:
        spans = find(sample.text)
        redacted = redact_text(sample.text)
        for start, end, entity in sample.spans:
            gold[entity] += 1
            if any(s <= start and end <= e and kind == entity for s, e, kind in spans):
                recalled[entity] += 1
            elif len(misses) < 40:
                misses.append(f"{entity}: {sample.text[start:end]!r} in {sample.text!r}")
            if sample.text[start:end] in redacted:
                leaks[entity] += 1
        for s, e, kind in spans:
            predicted[kind] += 1
            if any(start < e and s < end and entity == kind for start, end, entity in sample.spans):
                correct[kind] += 1
            elif len(misses) < 80:
                misses.append(f"false {kind}: {sample.text[s:e]!r} in {sample.text!r}")
    table = {}
    for entity in ENTITY_TYPES:
        table[entity] = {
            "labelled": gold[entity],
            "recall": recalled[entity] / gold[entity] if gold[entity] else None,
            "predicted": predicted[entity],
            "precision": correct[entity] / predicted[entity] if predicted[entity] else None,
            "leaks": leaks[entity],
        }
    return table, misses


_EVENT: dict[str, Any] = {
    "id": "e1",
    "api": "chat",
    "request": {
        "model": "gpt-4o-mini",
        "temperature": 0.2,
        "messages": [
            {"role": "system", "content": "You are a support agent for ACME. Be brief. " * 4},
            {
                "role": "user",
                "content": "Hi Maria, my order 123456 never arrived. I live at 1234 Elm Street, "
                "Springfield. Call me on +1 415 555 0132 or mail jo@example.com. "
                "The card was 4111 1111 1111 1111. " + "It was meant as a gift for my mother. " * 6,
            },
        ],
    },
    "response": {
        "id": "chatcmpl-1",
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "I am sorry to hear that. " * 10},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 120, "completion_tokens": 60, "total_tokens": 180},
    },
    "output_text": "I am sorry to hear that. " * 10,
    "template_chat": None,
    "template_params": {"customer": "Maria", "order": 123456},
    "attributes": {"team": "support"},
    "error": None,
}


def run(quick: bool = False) -> dict[str, Any]:
    samples = generate(600 if quick else 2400)
    table, misses = _score(samples)

    texts = [s.text for s in samples]
    size = sum(len(t.encode()) for t in texts)
    rounds = []
    for _ in range(1 if quick else 5):
        start = time.perf_counter()
        for text in texts:
            redact_text(text)
        rounds.append(time.perf_counter() - start)
    throughput = size / median(rounds) / 1e6

    event_size = len(str(_EVENT).encode())
    per_event = []
    for _ in range(50 if quick else 400):
        event = copy.deepcopy(_EVENT)
        start = time.perf_counter()
        redact_event(event)
        per_event.append(time.perf_counter() - start)
    return {
        "sentences": len(samples),
        "entities": table,
        "examples_missed_or_false": misses[:20],
        "throughput_mb_s": throughput,
        "corpus_bytes": size,
        "event_bytes": event_size,
        "per_event_us": median(per_event) * 1e6,
    }


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def report(result: dict[str, Any]) -> str:
    lines = [
        f"PII redaction (issue 7), {result['sentences']} generated sentences",
        f"{'entity':<16}{'labelled':>9}{'recall':>9}{'predicted':>10}{'precision':>10}"
        f"{'leaks':>7}  target",
    ]
    for entity, row in result["entities"].items():
        target = ""
        if entity in STRUCTURED:
            ok = (row["recall"] or 0) >= TARGET_RECALL and (
                row["precision"] or 0
            ) >= TARGET_PRECISION
            target = "met" if ok else "MISSED (>= 0.95 / 0.90)"
        lines.append(
            f"{entity:<16}{row['labelled']:>9}{_fmt(row['recall']):>9}{row['predicted']:>10}"
            f"{_fmt(row['precision']):>10}{row['leaks']:>7}  {target}"
        )
    lines += [
        f"throughput: {result['throughput_mb_s']:.2f} MB/s of prompt text "
        f"({result['corpus_bytes'] / 1e3:.0f} kB corpus)",
        f"added per recorded call: {result['per_event_us']:.0f} us on the exporter thread "
        f"(a {result['event_bytes'] / 1e3:.1f} kB chat event); 0 on the caller's thread",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    outcome = run()
    print(report(outcome))
    print("\n".join(outcome["examples_missed_or_false"]))
