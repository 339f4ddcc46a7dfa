"""Issues 7 and 19: how well and how fast ``redact_pii`` redacts, and what it leaves alone.

Recall and precision per entity type on two labelled corpora: ``bench/pii_corpus.py`` (Faker
values in 24 templates; the recognizers were tuned on it) and ``bench/pii_corpus2.py`` (built
apart: hand-written names and numbering-plan formats, running-text names, JSON and code), plus
that module's held-out set of names in running text, never tuned on. A labelled value is
recalled when a span of the same type covers all of it; a predicted span is correct when it
overlaps a labelled value of its type. "leaks" counts labelled values still readable, whole,
in the redacted text. Then the share of number-bearing sentences with no personal data (the
second corpus's distractors) that come out unchanged, per kind. Then throughput (MB/s through
``redact_text``) and the time redaction adds to one recorded call (``redact_event`` on a
typical chat event, on the exporter's thread; thread CPU time, the median of batches, as the
machine may be shared), with placeholders and with pseudonyms.
"""

from __future__ import annotations

import copy
import time
from collections import Counter
from typing import Any

from llmtap.pii import ENTITY_TYPES, pseudonym_key, redact_event, redact_text
from llmtap.pii._engine import find

from ._harness import Figure, figure, median
from .pii_corpus import generate
from .pii_corpus2 import generate as generate2
from .pii_corpus2 import generate_distractors, generate_held_out

STRUCTURED = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IBAN_CODE",
              "IP_ADDRESS", "SECRET")  # fmt: skip
TARGET_RECALL, TARGET_PRECISION = 0.95, 0.90
TARGET_NAMES = 0.90  # recall and precision of names in running text
TARGET_INTACT = 0.98  # distractor sentences left unchanged


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


def _intact(distractors: list[tuple[str, str]]) -> dict[str, Any]:
    """How many of ``distractors`` ((kind, sentence) with no personal data) come out as they
    went in; the ones changed by the kind of sentence and by the entity that fired."""
    kinds: Counter[str] = Counter()
    changed: Counter[str] = Counter()
    fired: Counter[str] = Counter()
    examples = []
    for kind, text in distractors:
        kinds[kind] += 1
        spans = find(text)
        if spans:
            changed[kind] += 1
            fired.update(entity for _, _, entity in spans)
            examples.append(redact_text(text))
    total = sum(kinds.values())
    return {
        "sentences": total,
        "intact": 1 - sum(changed.values()) / total,
        "changed_by_kind": dict(changed),
        "fired_by_entity": dict(fired),
        "kinds": len(kinds),
        "examples_changed": examples[:10],
    }


def _per_event_us(quick: bool, key: bytes | None) -> float:
    batches = []
    for _ in range(20 if quick else 80):
        events = [copy.deepcopy(_EVENT) for _ in range(10)]
        start = time.thread_time()
        for event in events:
            redact_event(event, key=key)
        batches.append((time.thread_time() - start) / len(events))
    return median(batches) * 1e6


def run(quick: bool = False) -> dict[str, Any]:
    start = time.perf_counter()
    redact_text("Please forward this to Priya Raman.")  # loads the name lists once
    first_use = time.perf_counter() - start

    samples = generate(600 if quick else 2400)
    table, misses = _score(samples)
    samples2 = generate2(300 if quick else 1200)
    table2, misses2 = _score(samples2)
    held, held_misses = _score(generate_held_out(100 if quick else 400))

    texts = [s.text for s in samples]
    size = sum(len(t.encode()) for t in texts)
    rounds = []
    for _ in range(1 if quick else 5):
        start = time.perf_counter()
        for text in texts:
            redact_text(text)
        rounds.append(time.perf_counter() - start)
    throughput = size / median(rounds) / 1e6

    return {
        "sentences": len(samples),
        "entities": table,
        "sentences2": len(samples2),
        "entities2": table2,
        "held_out_names": held["PERSON"],
        "distractors": _intact(generate_distractors(300)),
        "distractors1": _intact([("corpus 1", x.text) for x in samples if not x.spans]),
        "examples_missed_or_false": (misses[:10] + misses2[:10] + held_misses[:10]),
        "throughput_mb_s": throughput,
        "corpus_bytes": size,
        "event_bytes": len(str(_EVENT).encode()),
        "per_event_us": _per_event_us(quick, None),
        "per_event_pseudonyms_us": _per_event_us(quick, pseudonym_key("pseudonymize", "k")),
        "name_lists_first_use_s": first_use,
    }


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _table(entities: dict[str, dict[str, Any]], targets: bool) -> list[str]:
    lines = [
        f"{'entity':<16}{'labelled':>9}{'recall':>9}{'predicted':>10}{'precision':>10}"
        f"{'leaks':>7}  target",
    ]
    for entity, row in entities.items():
        target = ""
        if targets and entity in STRUCTURED:
            ok = (row["recall"] or 0) >= TARGET_RECALL and (
                row["precision"] or 0
            ) >= TARGET_PRECISION
            target = "met" if ok else "MISSED (>= 0.95 / 0.90)"
        if entity == "PERSON" and row["labelled"]:
            ok = (row["recall"] or 0) >= TARGET_NAMES and (row["precision"] or 0) >= TARGET_NAMES
            target = "met" if ok else "MISSED (>= 0.90 / 0.90)"
        lines.append(
            f"{entity:<16}{row['labelled']:>9}{_fmt(row['recall']):>9}{row['predicted']:>10}"
            f"{_fmt(row['precision']):>10}{row['leaks']:>7}  {target}"
        )
    return lines


def report(result: dict[str, Any]) -> str:
    held = result["held_out_names"]
    distractors, distractors1 = result["distractors"], result["distractors1"]
    intact_ok = "met" if distractors["intact"] >= TARGET_INTACT else "MISSED (>= 0.98)"
    changed = distractors["changed_by_kind"]
    lines = [
        f"PII redaction (issues 7, 19): corpus 1, {result['sentences']} Faker sentences (tuned on)",
        *_table(result["entities"], True),
        f"corpus 2, {result['sentences2']} sentences built apart (names in running text)",
        *_table(result["entities2"], True),
        f"held-out names in running text: {held['labelled']} labelled, recall "
        f"{_fmt(held['recall'])}, precision {_fmt(held['precision'])}",
        f"distractors (number-bearing, no personal data): {distractors['sentences']} sentences "
        f"of {distractors['kinds']} kinds, {distractors['intact']:.3f} left intact  {intact_ok}"
        + (f"; changed: {changed}, fired: {distractors['fired_by_entity']}" if changed else ""),
        f"corpus 1's distractors: {distractors1['sentences']} sentences, "
        f"{distractors1['intact']:.3f} left intact; entities fired: "
        f"{distractors1['fired_by_entity'] or 'none'}",
        f"throughput: {result['throughput_mb_s']:.2f} MB/s of prompt text "
        f"({result['corpus_bytes'] / 1e3:.0f} kB corpus)",
        f"added per recorded call: {result['per_event_us']:.0f} us CPU on the exporter thread "
        f"(a {result['event_bytes'] / 1e3:.1f} kB chat event), "
        f"{result['per_event_pseudonyms_us']:.0f} us with pseudonyms; 0 on the caller's thread",
        f"name lists loaded on first use: {result['name_lists_first_use_s']:.2f} s, once",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    outcome = run()
    print(report(outcome))
    print("\n".join(outcome["examples_missed_or_false"]))


def summary(r: dict[str, Any]) -> list[Figure]:
    names = r["held_out_names"]
    return [
        figure(
            "PII: distractor sentences left intact (corpus 2)",
            r["distractors"]["intact"],
            ">=",
            0.98,
        ),
        figure("PII: names in running text, recall (held out)", names["recall"], ">=", 0.9),
        figure("PII: names in running text, precision (held out)", names["precision"], ">=", 0.9),
    ]
