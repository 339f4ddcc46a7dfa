"""The SDK runs inside other people's applications: every package it imports is declared in
pyproject's ``dependencies``, not merely brought along by openai."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parent.parent

# What a user's process loads: the package, a client, a recorded call's modules.
LOADED = """
import json, sys, llmtap
llmtap.Client(api_key="sk", llmtap={"url": "http://127.0.0.1:9"})
print(json.dumps(sorted(m.__file__ for n, m in list(sys.modules.items())
                        if n.split(".")[0] == "llmtap" and getattr(m, "__file__", None))))
"""


def _module_level_imports(path: Path) -> set[str]:
    """Top-level package names imported at module level (imports inside functions are optional
    extras, loaded only when asked for)."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_package_the_sdk_imports_is_declared() -> None:
    out = subprocess.run(
        [sys.executable, "-c", LOADED], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    files = [Path(f) for f in json.loads(out)]
    assert any(f.name == "_exporter.py" for f in files)
    assert not [f for f in files if {"server", "store"} & set(f.parts)], files
    imported = set().union(*(_module_level_imports(f) for f in files))
    third_party = imported - set(sys.stdlib_module_names) - {"llmtap"}
    distributions = packages_distributions()
    needed = {_normal(d) for name in third_party for d in distributions[name]}
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {_normal(re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0]) for spec in declared}
    assert {"openai", "httpx2", "pydantic", "pydantic-core", "anyio"} <= needed
    assert needed <= names, needed - names
