"""The ingest API fuzzed from its own OpenAPI description (schemathesis): valid and invalid
bodies, against a real ``llmtap serve``. Whatever it is sent, it never answers 5xx, and only
with the status codes the description lists."""

from __future__ import annotations

import httpx2
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import status_code_conformance

from llmtap.server.openapi import openapi_document

from ._stores import STORE_BACKENDS
from .conftest import Server, server_on_each_backend

# Every test here runs on a server of each store backend.
server = pytest.fixture(scope="module", params=STORE_BACKENDS, name="server")(
    server_on_each_backend
)

schema = schemathesis.openapi.from_dict(openapi_document())
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=100, deterministic=True
)


@pytest.fixture(scope="module")
def key(server: Server) -> str:
    return server.new_key()


def test_the_description_is_what_the_server_serves(server: Server) -> None:
    assert httpx2.get(server.url + "/api/v1/openapi.json").json() == openapi_document()


@schema.parametrize()
@settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
def test_no_server_error(case: schemathesis.Case, server: Server, key: str) -> None:
    case.call_and_validate(
        base_url=server.url,
        headers={"authorization": f"Bearer {key}"},
        checks=[not_a_server_error, status_code_conformance],
    )
