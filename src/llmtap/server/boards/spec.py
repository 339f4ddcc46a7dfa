"""What a board is, as JSON, checked in one place: every save, import and preview goes through
``parse_board``, which answers a 400 naming each bad field.

A board::

    {"name": "OpenAI monitor",
     "spec": {"filters": {"environment": "prod"},      # as /api/v1/events takes them
              "time_range": {"last": "7d"},            # or {"from": ISO, "to": ISO}
              "bucket": "auto",                        # auto, minute, hour, day, week
              "panels": [{"id": "p1", "title": "Requests", "measures": ["requests"],
                          "group_by": "model", "view": "line", "width": 2,
                          "filters": {}, "time_range": null, "bucket": null}]}}

Measures, views, buckets and group-bys come from closed lists; names, titles and filter values
are text (shown escaped, never markup). A panel's ``filters`` are added to the board's (a key
in both: the panel's wins), its ``time_range`` and ``bucket`` replace the board's.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from ...store import GROUPS, TIME_GROUPS
from ..errors import ApiError
from ..query import SELECTING, event_filter

__all__ = [
    "ALIASES",
    "BUCKETS",
    "GROUP_BYS",
    "MEASURES",
    "RANGES",
    "TIME_VIEWS",
    "TOTAL_VIEWS",
    "VIEWS",
    "BoardIn",
    "Panel",
    "Spec",
    "TimeRange",
    "parse_board",
    "parse_spec",
]

# Measure -> where the stats answer has it (a key, or a key and a percentile).
MEASURES: dict[str, tuple[str, ...]] = {
    "requests": ("count",),
    "errors": ("errors",),
    "error_rate": ("error_rate",),
    "cost": ("cost_usd",),
    "input_tokens": ("input_tokens",),
    "output_tokens": ("output_tokens",),
    "cached_tokens": ("cached_tokens",),
    "reasoning_tokens": ("reasoning_tokens",),
    "latency_p50": ("latency_ms", "p50"),
    "latency_p90": ("latency_ms", "p90"),
    "latency_p95": ("latency_ms", "p95"),
    "latency_p99": ("latency_ms", "p99"),
    "ttft_p50": ("ttft_ms", "p50"),
    "ttft_p95": ("ttft_ms", "p95"),
    "avg_rating": ("avg_rating",),
    "feedback_count": ("ratings",),
    "low_rating_share": ("low_rating_share",),  # ratings under 0.7, of all ratings
}
VIEWS = ("line", "area", "bars", "table", "number", "scatter", "histogram")
# Views of one total: a group-by does not apply (a number, the latency histogram).
TOTAL_VIEWS = ("number", "histogram")
# Views drawn over time (their query is grouped by the time bucket too).
TIME_VIEWS = ("line", "area")
BUCKETS = ("auto", *TIME_GROUPS)
# "user" is the attribute llmtap names so (``attributes.user``): a panel's query says that.
ALIASES = {"user": "attributes.user"}
GROUP_BYS = (*(g for g in GROUPS if g not in TIME_GROUPS), *ALIASES)  # and "attributes.KEY"
# Relative ranges: seconds (None: all time).
RANGES: dict[str, int | None] = {
    "1h": 3600,
    "24h": 86400,
    "7d": 7 * 86400,
    "30d": 30 * 86400,
    "90d": 90 * 86400,
    "all": None,
}
MAX_PANELS = 40

Text = Annotated[str, StringConstraints(min_length=1, max_length=200)]
FilterValue = Annotated[str, StringConstraints(max_length=1000)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class TimeRange(_Strict):
    last: Literal["1h", "24h", "7d", "30d", "90d", "all"] | None = None
    from_: Annotated[str, StringConstraints(max_length=40)] | None = Field(None, alias="from")
    to: Annotated[str, StringConstraints(max_length=40)] | None = None

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    def dump(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)


class Panel(_Strict):
    id: Annotated[str, StringConstraints(min_length=1, max_length=40)] = Field(
        default_factory=lambda: uuid.uuid4().hex[:8]
    )
    title: Annotated[str, StringConstraints(max_length=200)] = ""
    measures: Annotated[
        list[Literal[tuple(MEASURES)]],  # type: ignore[valid-type]
        Field(min_length=1, max_length=6),
    ]
    group_by: Annotated[str, StringConstraints(min_length=1, max_length=211)] | None = None
    view: Literal[VIEWS] = "line"  # type: ignore[valid-type]
    width: Annotated[int, Field(ge=1, le=3)] = 1
    filters: Annotated[dict[Text, FilterValue], Field(max_length=30)] = Field(default_factory=dict)
    time_range: TimeRange | None = None
    bucket: Literal[BUCKETS] | None = None  # type: ignore[valid-type]


class Spec(_Strict):
    filters: Annotated[dict[Text, FilterValue], Field(max_length=30)] = Field(default_factory=dict)
    time_range: TimeRange = Field(default_factory=lambda: TimeRange.model_validate({"last": "24h"}))
    bucket: Literal[BUCKETS] = "auto"  # type: ignore[valid-type]
    panels: Annotated[list[Panel], Field(max_length=MAX_PANELS)] = Field(default_factory=list)


class BoardIn(_Strict):
    name: Text
    spec: Spec = Field(default_factory=Spec)
    is_template: bool = False


def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(board)"


def _check_range(where: str, tr: TimeRange | None) -> None:
    if tr is None:
        return
    absolute = tr.from_ is not None or tr.to is not None
    if (tr.last is None) == (not absolute):
        raise ApiError(400, f"{where}.time_range: give either last, or from and/or to")
    f = event_filter({k: v for k, v in tr.dump().items() if k != "last"}, SELECTING)
    if f.from_us is not None and f.to_us is not None and f.from_us >= f.to_us:
        raise ApiError(400, f"{where}.time_range: from is not before to")


def _check_panel(i: int, panel: Panel, spec: Spec) -> None:
    where = f"spec.panels.{i}"
    g = panel.group_by
    if (
        g is not None
        and g not in GROUP_BYS
        # One attribute: a comma would make it several group-bys past every check here.
        and not (g.startswith("attributes.") and len(g) > len("attributes.") and "," not in g)
    ):
        raise ApiError(
            400,
            f"{where}.group_by: {g!r} is not a field to group by",
            [{"field": f"{where}.group_by", "known": [*GROUP_BYS, "attributes.KEY"]}],
        )
    if panel.view == "scatter" and len(panel.measures) < 2:
        raise ApiError(400, f"{where}.measures: a scatter needs two measures (x, then y)")
    _check_range(where, panel.time_range)
    _checked_filters(f"{where}.filters", {**spec.filters, **panel.filters})


def _checked_filters(where: str, filters: dict[str, str]) -> None:
    bad = [k for k in filters if k in ("from", "to")]
    if bad:
        raise ApiError(400, f"{where}: the time goes in time_range, not filters")
    try:
        event_filter(filters, SELECTING)
    except ApiError as exc:
        raise ApiError(400, f"{where}: {exc.message}", exc.errors) from None


def parse_spec(spec: Spec) -> Spec:
    """``spec`` once what the models cannot say is checked too: group-bys, filters (as the
    events list checks them), time ranges, panel ids unique."""
    _checked_filters("spec.filters", spec.filters)
    _check_range("spec", spec.time_range)
    ids = [p.id for p in spec.panels]
    if len(set(ids)) != len(ids):
        raise ApiError(400, "spec.panels: two panels have the same id")
    for i, panel in enumerate(spec.panels):
        _check_panel(i, panel, spec)
    return spec


def parse_board(data: Any) -> BoardIn:
    """A board from JSON data; a 400 naming every field that is wrong."""
    try:
        board = BoardIn.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"field": _field(e["loc"]), "problem": e["msg"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ApiError(400, f"{first['field']}: {first['problem']}{more}", errors) from None
    parse_spec(board.spec)
    return board
