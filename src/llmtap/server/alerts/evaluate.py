"""The evaluator: on a schedule inside ``llmtap serve``, every enabled rule and budget of every
project is read from the stats aggregates and its state per group moved on; a change is
notified (``notify``).

- Reads go through ``store.stats`` over whole minutes only, so no raw event is scanned: the
  window ends on a whole minute and a rule's cost is the buckets it covers (a 30-day window
  reads ~30 daily rows per group). An event is counted in the window it belongs to (its
  ``started_at``), so late events (an SDK's spool, delivered after an outage) do not make a
  rule fire now for what happened then. A call is recorded when it ends, and delivered in
  batches: so the window ends on the last whole minute at least ``alert_delay`` (60 s) old,
  or a slow call of the newest minute, arriving after that minute was read, would be
  counted by no window.
- States: ``ok`` (never fired), ``firing``, ``resolved``. A state is held at least the
  rule's ``cooldown`` before it changes again, so a value that hovers at the threshold does
  not flap; the notification goes out on the change (firing and resolved both). Too little
  to decide (fewer events than ``min_events``, or no value: no latency, no rating, a change
  against a window without events) changes nothing: a rule does not resolve because the
  traffic stopped. A count or a sum (requests, errors, tokens, cost) is known with no events
  (it is 0), so "requests below 5" fires when the traffic stops. A group of a grouped rule
  that has no events at all resolves, saying so (``no_events``): its model or user went
  quiet.
- A change (``compare``) from 0 is an infinite one: a rate of errors that rises from 0 % is
  a jump. Its notification carries the two values (``current``, ``baseline``).
- A rule or budget disabled or deleted loses its states, without a notification; enabled
  again, it starts afresh.
- Budgets: spend from the period's start (UTC month or day), a forecast of the period's end
  from the rate so far, each ``notify_at`` fraction notified once per period.
- With several server processes on one database, one evaluates: the holder of a lease in the
  database, renewed each cycle; one that dies stops renewing and another takes over once it
  expires (three intervals).
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from calendar import monthrange
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from ...settings import resolve
from ...store import EventFilter, Store
from .._schedule import LeasedJob
from ..dashboard.render import page_url
from .notify import Notifier
from .rules import ADDITIVE, Budget, Rule, measure_of

__all__ = ["LEASE", "Evaluator", "base_url", "chosen", "dashboard_link", "period_of", "test_note"]

log = logging.getLogger("llmtap.alerts")
LEASE = "alert-evaluator"
_WEEK = 7 * 86_400


def _iso(second: int) -> str:
    return datetime.fromtimestamp(second, timezone.utc).isoformat()


def base_url() -> str:
    """Where the dashboard is, for links in notifications."""
    configured = resolve("public_url")
    if configured:
        return str(configured).rstrip("/")
    return f"http://{resolve('host')}:{resolve('port')}"


def dashboard_link(
    project: str, watch: Rule | Budget, group: dict[str, Any], start: int, end: int
) -> str:
    """The dashboard's events page showing the events behind a value."""
    params = {**watch.filters, **{k: v for k, v in group.items() if v is not None}}
    return base_url() + page_url(
        "/events", project, **{"from": _iso(start), "to": _iso(end)}, **params
    )


def period_of(period: str, now: int) -> tuple[str, int, int]:
    """(name, start, end) of the UTC calendar month or day ``now`` (seconds) is in."""
    moment = datetime.fromtimestamp(now, timezone.utc)
    if period == "day":
        start = datetime(moment.year, moment.month, moment.day, tzinfo=timezone.utc)
        return start.date().isoformat(), int(start.timestamp()), int(start.timestamp()) + 86_400
    start = datetime(moment.year, moment.month, 1, tzinfo=timezone.utc)
    days = monthrange(moment.year, moment.month)[1]
    return (
        f"{moment.year:04d}-{moment.month:02d}",
        int(start.timestamp()),
        int(start.timestamp()) + days * 86_400,
    )


def _key(group: dict[str, Any]) -> str:
    return json.dumps(group, sort_keys=True)


class _Stats:
    """The stats one cycle reads, each asked of the store once: rules that differ only in
    their measure, threshold or severity share their windows' answers."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._answers: dict[tuple[Any, ...], dict[str, dict[str, Any]]] = {}

    def groups(
        self, project_id: int, watch: Rule | Budget, start: int, end: int
    ) -> dict[str, dict[str, Any]]:
        """The stats of [start, end) (whole minutes: aggregates only), by group key."""
        key = (project_id, _key(watch.filters), watch.group_by, start, end)
        found = self._answers.get(key)
        if found is None:
            f = EventFilter(
                from_us=start * 1_000_000, to_us=end * 1_000_000, **watch.event_filter()
            )
            answer = self.store.stats(project_id, f, [watch.group_by] if watch.group_by else [])
            found = self._answers[key] = {_key(g["key"]): g for g in answer["groups"]}
        return found


class Evaluator(LeasedJob):
    """Evaluates every ``interval`` seconds on a thread of its own while it holds the lease.
    ``clock`` (seconds since the epoch) is injectable, for tests and benchmarks."""

    lease = LEASE
    thread_name = "llmtap-alerts"

    def __init__(
        self,
        store: Store,
        interval: float | None = None,
        notifier: Notifier | None = None,
        clock: Callable[[], float] = time.time,
        delay: float | None = None,
    ) -> None:
        super().__init__(store, float(resolve("alert_interval", interval)), clock)
        self.notifier = notifier or Notifier(store)
        self.delay = max(0, int(float(resolve("alert_delay", delay))))

    def _end(self, now: int) -> int:
        """Where windows end: the last whole minute at least ``delay`` old."""
        ready = now - self.delay
        return ready - ready % 60

    def close(self) -> None:
        super().close()
        self.notifier.close()

    def run_once(self) -> int | None:
        """One cycle, if this process holds the lease: how many rules and budgets were
        evaluated (None: another process evaluates)."""
        now = int(self.clock())
        ttl = int(max(3 * self.interval, 5.0) * 1_000_000)
        if not self.holds_lease(now * 1_000_000, ttl):
            return None
        items = self.store.every_alert_item(["rule", "budget", "channel"])
        channels: dict[int, list[dict[str, Any]]] = {}
        for item in items:
            if item["kind"] == "channel":
                channels.setdefault(item["project_id"], []).append(item["body"])
        watched = {
            (item["project_id"], item["kind"], item["name"])
            for item in items
            if item["kind"] != "channel" and item["body"].get("enabled", True)
        }
        previous: dict[tuple[Any, ...], Any] = {}
        for s in self.store.alert_states():
            # By rule, then group: a rule's known groups are found without a scan of all.
            previous.setdefault((s["project_id"], s["kind"], s["name"]), {})[_key(s["group"])] = s
        states: list[dict[str, Any]] = []
        # The states of rules disabled or deleted: gone, without a notification (enabled
        # again, a rule starts afresh, and a new incident is told).
        forget = [s for k, known in previous.items() if k not in watched for s in known.values()]
        history: list[dict[str, Any]] = []
        outbox: list[dict[str, Any]] = []
        evaluated = 0
        stats = _Stats(self.store)
        for item in items:
            if item["kind"] == "channel" or not item["body"].get("enabled", True):
                continue
            try:
                watch: Rule | Budget
                if item["kind"] == "rule":
                    watch = rule = Rule.model_validate(item["body"])
                    changes = self._rule(item, rule, now, previous, stats)
                else:
                    watch = budget = Budget.model_validate(item["body"])
                    changes = self._budget(item, budget, now, previous, stats)
            except Exception:  # one broken rule must not stop the others
                log.exception("alert %r of project %s failed", item["name"], item["project"])
                continue
            evaluated += 1
            forget += _misshapen(item, watch, previous)
            for state, note in changes:
                if state.pop("forget", False):
                    forget.append(state)
                    continue
                states.append(state)
                if note is not None:
                    note["id"] = uuid.uuid4().hex  # the receiver's way to tell a repeat
                    history.append(
                        {
                            **{k: state[k] for k in ("project_id", "kind", "name", "group")},
                            "at_us": now * 1_000_000,
                            "event": note["event"],
                            "detail": {k: v for k, v in note.items() if k != "project_id"},
                        }
                    )
                    # A channel named and gone still gets its row: its delivery fails,
                    # saying so in the history, rather than the note going nowhere unseen.
                    named = watch.channels or [
                        c["name"] for c in channels.get(item["project_id"], [])
                    ]
                    outbox += [
                        {
                            "project_id": item["project_id"],
                            "id": uuid.uuid4().hex,
                            "kind": item["kind"],
                            "name": item["name"],
                            "channel": channel,
                            "note": note,
                            "at_us": now * 1_000_000,
                        }
                        for channel in named
                    ]
        # A cycle that took longer than the lease (a stall) writes nothing: another process
        # may hold it now, and has told what changed.
        if not self.holds_lease(int(self.clock() * 1_000_000), ttl):
            return None
        # The states and their notifications at once (see ``notify``): then the sending.
        self.store.record_alerts(states, history, outbox, forget)
        self.notifier.deliver_due()
        return evaluated

    # -- rules -----------------------------------------------------------------------------

    def _rule(
        self,
        item: dict[str, Any],
        rule: Rule,
        now: int,
        previous: dict[tuple[Any, ...], Any],
        stats: _Stats,
    ) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
        end = self._end(now)
        start = end - rule.window
        current = stats.groups(item["project_id"], rule, start, end)
        base: dict[str, dict[str, Any]] = {}
        if rule.compare is not None:
            shift = rule.window if rule.compare == "previous_window" else _WEEK
            base = stats.groups(item["project_id"], rule, start - shift, end - shift)
        out = []
        additive = rule.measure in ADDITIVE
        for key, group, old in _each_group(item, rule, previous, current):
            events = group["count"] if group else 0
            value = measure_of(rule.measure, group) if group else (0.0 if additive else None)
            # A count or a sum is known with no events; a rate, a percentile, an average
            # needs ``min_events`` of them.
            enough = additive or events >= rule.min_events
            more: dict[str, Any] = {}
            if rule.compare is not None:
                was = base.get(key)
                before = measure_of(rule.measure, was) if was else (0.0 if additive else None)
                more = {"current": _finite(value), "baseline": _finite(before)}
                value = _change(value, before)
                # A change is a ratio of two windows: each needs its events.
                enough = events >= rule.min_events and (
                    additive or (was or {}).get("count", 0) >= rule.min_events
                )
            known = breach = False
            if value is not None and enough:
                known = True
                breach = value > rule.threshold if rule.op == "above" else value < rule.threshold
            state, since = (old["state"], old["since_us"] // 1_000_000) if old else ("ok", now)
            new_state = state
            held = now - since >= rule.cooldown
            if breach and state != "firing" and (state == "ok" or held):
                new_state = "firing"
            elif known and not breach and state == "firing" and held:
                new_state = "resolved"
            elif rule.group_by and group is None and state == "firing" and held:
                new_state = "resolved"  # its model (user, ...) went quiet: it says so
                more["no_events"] = True
            change = _Change(
                item, rule, key, now, start, end, _finite(value), rule.threshold, events
            )
            record = change.record(new_state, since if new_state == state else now, {})
            if (
                rule.group_by
                and group is None
                and new_state == state != "firing"
                and (state == "ok" or held)  # resolved: kept through its cooldown
            ):
                record["forget"] = True  # a quiet group: known again when it has events
            note = None
            if new_state != state:
                note = change.note(
                    new_state,
                    severity=rule.severity,
                    measure=rule.measure,
                    op=rule.op,
                    compare=rule.compare,
                    **more,
                )
            out.append((record, note))
        return out

    # -- budgets ---------------------------------------------------------------------------

    def _budget(
        self,
        item: dict[str, Any],
        budget: Budget,
        now: int,
        previous: dict[tuple[Any, ...], Any],
        stats: _Stats,
    ) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
        name, start, period_end = period_of(budget.period, now)
        end = self._end(now)
        current = stats.groups(item["project_id"], budget, start, end) if end > start else {}
        out = []
        for key, group, old in _each_group(item, budget, previous, current):
            spent = (group or {}).get("cost_usd") or 0.0
            forecast = spent * (period_end - start) / max(end - start, 60)
            extra = old["extra"] if old else {}
            notified = list(extra.get("notified", [])) if extra.get("period") == name else []
            state = old["state"] if old else "ok"
            since = old["since_us"] // 1_000_000 if old else now
            crossed = [f for f in budget.notify_at if spent >= f * budget.limit_usd]
            fresh = [f for f in crossed if f not in notified]
            event = None
            if fresh:
                event, state, since = "budget", "firing", now
                notified = sorted({*notified, *fresh})
            elif state == "firing" and not crossed:  # a new period (or a lowered spend)
                event, state, since = "resolved", "resolved", now
            events = (group or {}).get("count", 0)
            change = _Change(item, budget, key, now, start, end, spent, budget.limit_usd, events)
            extra = {"period": name, "notified": notified, "forecast": forecast}
            record = change.record(state, since, extra)
            if budget.group_by and group is None and event is None and state != "firing":
                record["forget"] = True  # nothing spent this period: no state to keep
            note = None
            if event is not None:
                note = change.note(
                    event,
                    severity="warning",
                    fraction=max(fresh) if fresh else None,
                    forecast=forecast,
                    period=budget.period,
                    period_name=name,
                )
            out.append((record, note))
        return out


def _finite(value: float | None) -> float | None:
    """``value`` as a state or a note keeps it: an infinite change (from 0), a sum past
    float, is no number to store or to answer in JSON."""
    return value if value is None or math.isfinite(value) else None


def _change(value: float | None, before: float | None) -> float | None:
    """The change from ``before`` to ``value``, in percent: infinite from 0 (to anything but
    0), None when either is unknown."""
    if value is None or before is None:
        return None
    if before == 0:
        return 0.0 if value == 0 else math.copysign(math.inf, value)
    return 100.0 * (value - before) / abs(before)  # from a denormal: infinite too


def _each_group(
    item: dict[str, Any],
    watch: Rule | Budget,
    previous: dict[tuple[Any, ...], Any],
    current: dict[str, dict[str, Any]],
) -> list[tuple[str, dict[str, Any] | None, dict[str, Any] | None]]:
    """(key, this window's stats, last state) of each group seen now or before; an
    ungrouped watch has its one group, events or not."""
    known = previous.get((item["project_id"], item["kind"], item["name"]), {})
    keys = set(current) | {k for k, old in known.items() if _fits(watch, old)}
    if not watch.group_by:
        keys.add(_key({}))
    return [(key, current.get(key), known.get(key)) for key in sorted(keys)]


def _fits(watch: Rule | Budget, state: dict[str, Any]) -> bool:
    """Whether a state's group has the fields the watch groups by now."""
    return set(state["group"]) == ({watch.group_by} if watch.group_by else set())


def _misshapen(
    item: dict[str, Any], watch: Rule | Budget, previous: dict[tuple[Any, ...], Any]
) -> list[dict[str, Any]]:
    """The states of groups the watch no longer has (its group-by changed): forgotten
    without a note, as they belong to a question nobody asks any more."""
    known = previous.get((item["project_id"], item["kind"], item["name"]), {})
    return [old for old in known.values() if not _fits(watch, old)]


class _Change:
    """One group's outcome in a cycle: its state record, and its notification."""

    def __init__(
        self,
        item: dict[str, Any],
        watch: Rule | Budget,
        key: str,
        now: int,
        start: int,
        end: int,
        value: float | None,
        threshold: float,
        events: int,
    ) -> None:
        self.item, self.watch, self.group = item, watch, json.loads(key)
        self.now, self.start, self.end = now, start, end
        self.value, self.threshold, self.events = value, threshold, events

    def record(self, state: str, since: int, extra: dict[str, Any]) -> dict[str, Any]:
        return {
            "project_id": self.item["project_id"],
            "kind": self.item["kind"],
            "name": self.item["name"],
            "group": self.group,
            "state": state,
            "value": self.value,
            "threshold": self.threshold,
            "events": self.events,
            "since_us": since * 1_000_000,
            "evaluated_us": self.now * 1_000_000,
            "extra": extra or {"window": [self.start, self.end]},
        }

    def note(self, event: str, **more: Any) -> dict[str, Any]:
        item, start, end = self.item, self.start, self.end
        return {
            "project_id": item["project_id"],
            "project": item["project"],
            "kind": item["kind"],
            "name": item["name"],
            "event": event,
            "group": self.group,
            "value": self.value,
            "threshold": self.threshold,
            "events": self.events,
            "window": {"from": _iso(start), "to": _iso(end), "seconds": end - start},
            "link": dashboard_link(item["project"], self.watch, self.group, start, end),
            "at": _iso(self.now),
            **more,
        }


def chosen(channels: list[dict[str, Any]], watch: Rule | Budget) -> list[dict[str, Any]]:
    """The channels a rule names (all of its project's, when it names none)."""
    if not watch.channels:
        return channels
    return [c for c in channels if c["name"] in watch.channels]


def test_note(project: str, project_id: int, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """A test notification of a rule or budget: what it watches, no value, a link to it."""
    now = int(time.time())
    window = int(body.get("window", 0))
    return {
        "project_id": project_id,
        "project": project,
        "kind": kind,
        "name": body["name"],
        "event": "test",
        "severity": body.get("severity", "info"),
        "measure": body.get("measure", "cost"),
        "op": body.get("op", "above"),
        "compare": body.get("compare"),
        "group": {},
        "value": None,
        "threshold": body.get("threshold", body.get("limit_usd")),
        **({"period": body.get("period", "month")} if kind == "budget" else {}),
        "events": 0,
        "window": {"from": _iso(now - window), "to": _iso(now), "seconds": window},
        "link": base_url() + page_url("/alerts", project),
        "at": _iso(now),
    }
