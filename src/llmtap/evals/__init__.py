"""Prompt tests from production (issue 15): test sets of cases made from recorded calls and
their feedback (``cases``), evaluators that score a new output (``evaluators``), the runner
that replays a set through a template revision or model (``runner``), and the comparison of
a run with its baseline (``results``).

The runner calls the model through ``llmtap.AsyncClient``; ``cases``, ``evaluators``'s
parsing and ``results`` are pure, so the server uses them without the SDK.
"""
