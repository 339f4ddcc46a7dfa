"""Property tests of the wire schema: whatever event the SDK can build is valid on the
server, and the same facts come out of it whichever way the store reads it; whatever invalid
value an event carries, the server names the field in a 4xx, never a 5xx, and stores the valid
events beside it."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from typing import Any

import pydantic_core
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmtap.store._facts import facts_of_body, facts_of_event
from llmtap.wire import EARLIEST, LATEST, MAX_DURATION_MS, MAX_TOKENS, Event, make_event

from .conftest import Project

# JSON values as an application's arguments and attributes hold them (finite floats: JSON
# has no NaN), and text as Python holds it (no lone surrogates).
text = st.text(max_size=40)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)
counts = st.none() | st.integers(0, MAX_TOKENS)
messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["system", "user", "assistant"]), "content": text}
    ),
    max_size=4,
)
events = st.builds(
    lambda eid, api, status, started, latency, usage, name, chat, params, attrs, msgs, out: (
        make_event(
            id=eid,
            api=api,
            provider="openai",
            model="gpt-4o-mini",
            request={"model": "gpt-4o-mini", "messages": msgs, **params},
            response={"choices": [{"message": {"role": "assistant", "content": out}}]},
            output_text=out,
            status=status,
            started_at=started.isoformat(),
            latency_ms=latency,
            usage=usage,
            prompt_template_name=name,
            chat_id=chat,
            attributes=attrs,
        )
    ),
    st.text(min_size=1, max_size=128),
    st.sampled_from(["chat", "completion", "responses", "embeddings"]),
    st.sampled_from(["ok", "error", "cancelled"]),
    st.datetimes(
        EARLIEST.replace(tzinfo=None), LATEST.replace(tzinfo=None), timezones=st.just(timezone.utc)
    ),
    st.none() | st.floats(0, MAX_DURATION_MS),
    st.none() | st.fixed_dictionaries({"input_tokens": counts, "output_tokens": counts}),
    st.none() | st.text(max_size=512),
    st.none() | st.text(max_size=512),
    st.dictionaries(st.sampled_from(["temperature", "top_p", "user"]), json_values, max_size=3),
    st.dictionaries(text, json_values, max_size=5),
    messages,
    st.none() | text,
)


@given(events)
def test_every_event_the_sdk_builds_is_valid_and_round_trips(event: dict[str, Any]) -> None:
    sent = pydantic_core.to_json(event)  # what the exporter sends
    model = Event.model_validate_json(sent)
    again = Event.model_validate_json(model.model_dump_json())
    assert again == model
    # The store derives the same from the validated event as from its stored body.
    assert facts_of_event(model) == facts_of_body(json.loads(model.model_dump_json()))


def _valid() -> dict[str, Any]:
    return make_event(
        id=str(uuid.uuid4()),
        api="chat",
        status="ok",
        started_at=datetime.now(timezone.utc).isoformat(),
    )


# (the field as the error names it, how the event is spoilt)
INVALID = st.one_of(
    st.tuples(st.just("id"), st.sampled_from(["", "x" * 129, 7, None, [], {}])),
    st.tuples(
        st.just("api"),
        st.text().filter(lambda s: s not in {"chat", "completion", "responses", "embeddings"})
        | st.integers(),
    ),
    st.tuples(st.just("status"), st.sampled_from(["fine", "", 1, None])),
    st.tuples(
        st.just("started_at"),
        st.sampled_from(
            [
                "yesterday",
                "2024-01-01T00:00:00",
                "",
                None,
                [],
                "2024-13-45T00:00:00Z",
                "1999-12-31T23:59:59Z",
                "9999-12-31T23:30:00-05:00",
                "0001-01-01T00:30:00+01:00",
                "2099-12-31T00:00:00Z",  # valid, but past any retention: refused by the server
            ]
        ),
    ),
    st.tuples(
        st.just("latency_ms"),
        st.sampled_from([-1, -0.5, "fast", [], {}, MAX_DURATION_MS * 2, 1e300]),
    ),
    st.tuples(
        st.just("usage.input_tokens"), st.sampled_from([-1, 2**63, "many", 1.5, MAX_TOKENS + 1])
    ),
    st.tuples(st.just("wire_version"), st.sampled_from([0, 2, "1x", None])),
    st.tuples(st.just("attributes"), st.sampled_from([[], "a=b", 3])),
    st.tuples(st.just("no_such_field"), json_values),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(INVALID)
def test_an_invalid_value_is_named_in_a_4xx_and_the_valid_events_are_stored(
    project: Project, spoil: tuple[str, Any]
) -> None:
    field, value = spoil
    bad = _valid()
    if field.startswith("usage."):
        bad["usage"] = {field.split(".", 1)[1]: value}
    else:
        bad[field] = value
    good = _valid()
    r = project.server.post("/api/v1/events", project.key, json={"events": [bad, good]})
    assert r.status_code == 200, r.text  # a mixed batch: the valid one is stored
    answer = r.json()
    assert (answer["stored"], answer["rejected"]) == (1, 1)
    (error,) = answer["errors"]
    assert error["index"] == 0 and error["error"].startswith(f"{field}: "), error
    alone = project.server.post("/api/v1/events", project.key, json={"events": [bad]})
    assert alone.status_code == 400
    assert alone.json()["errors"][0]["error"].startswith(f"{field}: ")
    assert project.event(good["id"])["id"] == good["id"]
