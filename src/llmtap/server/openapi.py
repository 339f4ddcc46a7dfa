"""``GET /api/v1/openapi.json``: the ingest endpoints described in OpenAPI 3.1, built from the
wire schema itself, so the description cannot drift from what the server validates."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import JSONResponse

from .._version import __version__
from ..wire import Batch, Feedback

__all__ = ["openapi_document", "serve_openapi"]

_REF = "#/components/schemas/{model}"

_ERROR = {
    "type": "object",
    "required": ["ok", "error", "errors", "status"],
    "properties": {
        "ok": {"const": False},
        "error": {"type": "string"},
        "errors": {"type": "array"},
        "status": {"type": "integer"},
    },
}

_INGESTED = {
    "type": "object",
    "required": ["ok", "accepted", "stored", "duplicates", "rejected", "errors"],
    "properties": {
        "ok": {"type": "boolean"},
        "accepted": {"type": "integer"},
        "stored": {"type": "integer"},
        "duplicates": {"type": "integer"},
        "rejected": {"type": "integer"},
        "errors": {"type": "array"},
        "error": {"type": "string"},
        "status": {"type": "integer"},
    },
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _errors(*codes: int) -> dict[str, Any]:
    reasons = {
        400: "invalid request (per-event errors listed)",
        401: "missing or invalid API key",
        413: "body over the size limit",
    }
    return {
        str(code): {
            "description": reasons[code],
            "content": _json({"$ref": _REF.format(model="Error")}),
        }
        for code in codes
    }


def openapi_document() -> dict[str, Any]:
    refs, defs = models_json_schema(
        [(Batch, "validation"), (Feedback, "validation")], ref_template=_REF
    )
    schemas = {**defs["$defs"], "Error": _ERROR, "Ingested": _INGESTED}
    return {
        "openapi": "3.1.0",
        "info": {"title": "llmtap ingest API", "version": __version__},
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/events": {
                "post": {
                    "summary": "Store a batch of events; idempotent by event id.",
                    "requestBody": {
                        "required": True,
                        "content": _json(refs[(Batch, "validation")]),
                    },
                    "responses": {
                        "200": {
                            "description": "stored (a mixed batch lists its rejected events)",
                            "content": _json({"$ref": _REF.format(model="Ingested")}),
                        },
                        **_errors(400, 401, 413),
                    },
                }
            },
            "/api/v1/feedback": {
                "post": {
                    "summary": "A rating or a better response for a recorded call.",
                    "requestBody": {
                        "required": True,
                        "content": _json(refs[(Feedback, "validation")]),
                    },
                    "responses": {
                        "200": {"description": "stored", "content": _json({"type": "object"})},
                        **_errors(400, 401, 413),
                    },
                }
            },
        },
    }


async def serve_openapi(request: Request) -> JSONResponse:
    document = getattr(request.app.state, "openapi", None)
    if document is None:
        document = request.app.state.openapi = openapi_document()
    return JSONResponse(document)
