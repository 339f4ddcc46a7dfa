"""``TestsApi``: the test-set and run endpoints of a llmtap server, for the runner and the CLI
(``llmtap.Api`` plus ``/api/v1/testsets`` and ``/api/v1/runs``)."""

from __future__ import annotations

from typing import Any

from ..api import Api, ApiError

__all__ = ["TestsApi"]


class TestsApi(Api):
    """A llmtap server's prompt-test API; ``url`` and ``api_key`` as ``llmtap.Api`` takes them
    (an ``admin`` key to change sets and record runs, ``read`` to look)."""

    __test__ = False  # not a pytest class, whatever its name

    def __enter__(self) -> TestsApi:
        return self

    def testsets(self) -> list[dict[str, Any]]:
        return self._get("/api/v1/testsets")["testsets"]  # type: ignore[no-any-return]

    def testset_id(self, name: str) -> int:
        """The id of the set named ``name``; an ``ApiError`` 404 when there is none."""
        found = self._get("/api/v1/testsets", {"name": name})["testsets"]
        if not found:
            raise ApiError(404, f"no test set named {name!r} in this project")
        return int(found[0]["id"])

    def testset(self, testset_id: int) -> dict[str, Any]:
        return self._get(f"/api/v1/testsets/{testset_id}")  # type: ignore[no-any-return]

    def create_testset(self, name: str, **source: Any) -> dict[str, Any]:
        """A new set: ``source="feedback"`` (``template=``, ``feedback_ids=``), ``"events"``
        (``filter={...}``) or ``"cases"`` (``cases=[...]``); ``evaluators=[...]``."""
        body = {"name": name, **{k: v for k, v in source.items() if v is not None}}
        return self._answer(self._http.post("/api/v1/testsets", json=body))  # type: ignore[no-any-return]

    def import_jsonl(self, testset_id: int, text: str) -> dict[str, Any]:
        """Add the cases of JSON-lines text (the dashboard's feedback download, say)."""
        response = self._http.post(
            f"/api/v1/testsets/{testset_id}/cases",
            content=text.encode(),
            headers={"content-type": "application/x-ndjson"},
        )
        return self._answer(response)  # type: ignore[no-any-return]

    def delete_testset(self, testset_id: int) -> dict[str, Any]:
        return self._answer(self._http.delete(f"/api/v1/testsets/{testset_id}"))  # type: ignore[no-any-return]

    def create_run(self, run_id: str, testset_id: int, config: dict[str, Any]) -> dict[str, Any]:
        body = {"id": run_id, "testset": testset_id, "config": config}
        return self._answer(self._http.post("/api/v1/runs", json=body))["run"]  # type: ignore[no-any-return]

    def run(self, run_id: str) -> dict[str, Any]:
        """A run as stored, with its results."""
        return self._get(f"/api/v1/runs/{run_id}", {"raw": "1"})  # type: ignore[no-any-return]

    def run_view(self, run_id: str, baseline: str | None = None) -> dict[str, Any]:
        """A run against its baseline (see ``llmtap.evals.results.compare``)."""
        params = {"baseline": baseline} if baseline else None
        return self._get(f"/api/v1/runs/{run_id}", params)  # type: ignore[no-any-return]

    def add_results(self, run_id: str, results: list[dict[str, Any]]) -> dict[str, Any]:
        response = self._http.post(f"/api/v1/runs/{run_id}/results", json={"results": results})
        return self._answer(response)  # type: ignore[no-any-return]

    def set_run_status(
        self, run_id: str, status: str, summary: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        body = {"status": status, "summary": summary}
        return self._answer(self._http.patch(f"/api/v1/runs/{run_id}", json=body))  # type: ignore[no-any-return]
