"""The boards every project offers, one click away: "OpenAI monitor" (the W&B Weave seed's
monitor board: requests, errors, cost, tokens, latency over time; by model, template and
environment) and "prompt experiments" (prompt variants side by side by an attribute, as the
seed's Example 3 compares system prompts)."""

from __future__ import annotations

from typing import Any

__all__ = ["BUILTIN"]


def _panel(pid: str, title: str, measures: list[str], view: str, **more: Any) -> dict[str, Any]:
    return {"id": pid, "title": title, "measures": measures, "view": view, **more}


BUILTIN: dict[str, dict[str, Any]] = {
    "openai-monitor": {
        "name": "OpenAI monitor",
        "spec": {
            "time_range": {"last": "7d"},
            "bucket": "auto",
            "panels": [
                _panel("total", "Requests", ["requests"], "number"),
                _panel("cost-total", "Cost (USD)", ["cost"], "number"),
                _panel("err-rate", "Error rate", ["error_rate"], "number"),
                _panel("requests", "Requests and errors", ["requests", "errors"], "line", width=2),
                _panel("cost", "Cost (USD)", ["cost"], "area", group_by="model"),
                _panel("tokens", "Tokens", ["input_tokens", "output_tokens"], "area", width=2),
                _panel("latency", "Latency (ms)", ["latency_p50", "latency_p95"], "line"),
                _panel("latency-hist", "Latency histogram", ["requests"], "histogram"),
                _panel(
                    "by-model",
                    "By model",
                    ["requests", "cost", "latency_p95"],
                    "table",
                    group_by="model",
                    width=2,
                ),
                _panel(
                    "by-template",
                    "By template",
                    ["requests", "errors", "cost"],
                    "bars",
                    group_by="prompt_template_name",
                    width=2,
                ),
                _panel(
                    "by-env",
                    "By environment",
                    ["requests", "error_rate"],
                    "table",
                    group_by="environment",
                ),
            ],
        },
    },
    "prompt-experiments": {
        "name": "Prompt experiments",
        "spec": {
            "time_range": {"last": "30d"},
            "bucket": "auto",
            "panels": [
                _panel(
                    "variants",
                    "Variants side by side",
                    ["requests", "cost", "latency_p50", "avg_rating", "feedback_count"],
                    "table",
                    group_by="attributes.system_prompt",
                    width=3,
                ),
                _panel(
                    "cost-latency",
                    "Cost against latency, per variant",
                    ["latency_p50", "cost"],
                    "scatter",
                    group_by="attributes.system_prompt",
                    width=2,
                ),
                _panel(
                    "rating",
                    "Average rating per variant",
                    ["avg_rating"],
                    "bars",
                    group_by="attributes.system_prompt",
                ),
                _panel(
                    "revisions",
                    "By template revision",
                    ["requests", "cost", "avg_rating"],
                    "table",
                    group_by="template_revision",
                    width=3,
                ),
            ],
        },
    },
}
