"""``llmtap boards export|import``, run as a user would: a round trip between two projects
keeps the boards, a bad file is refused whole with a message naming the bad field."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from .conftest import Server
from .test_cli import llmtap_cli


def test_export_then_import_into_another_project(server: Server, tmp_path: Path) -> None:
    source = f"src-{uuid.uuid4().hex[:6]}"
    key = server.new_key(source)
    for template in ("openai-monitor", "prompt-experiments"):
        made = server.post("/api/v1/boards", key, json={"template": template})
        assert made.status_code == 201, made.text
    env = {"LLMTAP_URL": server.url, "LLMTAP_API_KEY": key}
    every = llmtap_cli("boards", "export", source, **env)
    assert every.returncode == 0, every.stderr
    exported = json.loads(every.stdout)
    assert [b["name"] for b in exported["boards"]] == ["OpenAI monitor", "Prompt experiments"]
    one = llmtap_cli("boards", "export", source, "Prompt experiments", **env)
    assert [b["name"] for b in json.loads(one.stdout)["boards"]] == ["Prompt experiments"]
    wrong = llmtap_cli("boards", "export", "not-the-keys-project", **env)
    assert wrong.returncode == 1 and "404" in wrong.stderr

    target_key = server.new_key()
    path = tmp_path / "boards.json"
    path.write_text(every.stdout)
    imported = llmtap_cli(
        "boards", "import", str(path), LLMTAP_API_KEY=target_key, LLMTAP_URL=server.url
    )
    assert imported.returncode == 0, imported.stderr
    assert len(imported.stdout.splitlines()) == 2
    listed = server.get("/api/v1/boards", target_key).json()["boards"]
    copies = {b["name"]: server.get(f"/api/v1/boards/{b['id']}", target_key).json() for b in listed}
    for board in exported["boards"]:
        assert copies[board["name"]]["spec"] == board["spec"]

    # A bad board anywhere in the file: nothing is created, the field is named.
    exported["boards"][1]["spec"]["panels"][0]["view"] = "pie"
    path.write_text(json.dumps(exported))
    refused = llmtap_cli(
        "boards", "import", str(path), LLMTAP_API_KEY=target_key, LLMTAP_URL=server.url
    )
    assert refused.returncode == 1
    assert "board 2 ('Prompt experiments')" in refused.stderr
    assert "spec.panels.0.view" in refused.stderr
    assert len(server.get("/api/v1/boards", target_key).json()["boards"]) == 2
    for text, problem in (
        ("{", "not JSON"),
        ("[]", "not a boards file"),
        ('{"format": "llmtap-boards/1", "boards": 3}', "must be a list"),
        ("[" * 5000 + "]" * 5000, "nested too deeply"),
    ):
        path.write_text(text)
        bad = llmtap_cli(
            "boards", "import", str(path), LLMTAP_API_KEY=target_key, LLMTAP_URL=server.url
        )
        assert bad.returncode == 1 and problem in bad.stderr, bad.stderr
        assert "Traceback" not in bad.stderr
