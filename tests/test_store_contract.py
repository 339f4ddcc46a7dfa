"""One store contract: every backend has every member of ``llmtap.store.Store``, with the same
signature, and nothing outside ``llmtap/store`` reaches past it (no private store module, no
private member of a store)."""

from __future__ import annotations

import ast
import inspect
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import llmtap
from llmtap.store import SQLiteStore, Store, StoreUnavailable, describe_db, open_store

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(llmtap.__file__).resolve().parent
STORE = PACKAGE / "store"
# What code outside the store may reach: the package's public names, nothing under them.
OUTSIDE = [PACKAGE, ROOT / "bench"]
# Public members a backend has beyond the contract: its own settings, for its own tests.
BACKEND_ONLY = {"sqlite": {"path", "derive_delay"}, "postgresql": {"derive_delay"}}


def contract_methods() -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(Store).items()
        if not name.startswith("_") and inspect.isfunction(member)
    }


def without_self(signature: inspect.Signature) -> list[inspect.Parameter]:
    return list(signature.parameters.values())[1:]


def test_the_contract_names_what_the_server_uses() -> None:
    """A sanity check of the walk below: the contract is not empty, and holds every group."""
    names = set(contract_methods())
    assert {"insert_events", "list_events", "stats", "set_price_override", "key_by_hash"} <= names
    assert {"session_user", "record_failure", "list_feedback", "set_meta", "delete_events"} <= names
    assert {"backend", "applied_migrations"} <= set(Store.__annotations__)


def test_the_backend_has_every_member_of_the_contract_with_its_signature(store: Store) -> None:
    backend = type(store)
    for name, wanted in contract_methods().items():
        member = getattr(store, name, None)
        assert callable(member), f"{backend.__name__} has no method {name}"
        got = inspect.signature(member)  # bound: without self
        expected = without_self(wanted)
        assert [p.name for p in got.parameters.values()] == [p.name for p in expected], name
        for mine, theirs in zip(got.parameters.values(), expected, strict=True):
            where = f"{backend.__name__}.{name}({mine.name})"
            assert mine.kind == theirs.kind, where
            assert mine.annotation == theirs.annotation, where
            # The contract writes ``...`` for a default each backend chooses.
            assert (mine.default is inspect.Parameter.empty) == (
                theirs.default is inspect.Parameter.empty
            ), where
            if theirs.default not in (inspect.Parameter.empty, Ellipsis):
                assert mine.default == theirs.default, where
        assert got.return_annotation == wanted.return_annotation, name
    assert isinstance(store.backend, str) and store.backend
    assert isinstance(store.applied_migrations, list)


def test_a_backend_offers_nothing_public_beyond_the_contract(store: Store) -> None:
    """What callers may use is what the contract says: a public method only one backend has
    would be a second shape of the store."""
    contract = set(contract_methods()) | set(Store.__annotations__)
    public = {name for name in dir(store) if not name.startswith("_")}
    assert public - contract == BACKEND_ONLY[store.backend]


def _modules(folders: list[Path]) -> Iterator[tuple[Path, str]]:
    for folder in folders:
        for path in sorted(folder.rglob("*.py")):
            if STORE in path.parents:
                continue
            base = ROOT if folder.name == "bench" else PACKAGE.parent
            parts = list(path.relative_to(base).with_suffix("").parts)
            yield path, ".".join(parts)


def _imported(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """Every module name the tree imports (``from x import y`` gives ``x.y`` too: ``y`` may be
    a module), relative imports resolved."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            yield node.lineno, source
            for alias in node.names:
                yield node.lineno, f"{source}.{alias.name}"


def _private_store_module(name: str) -> bool:
    parts = name.split(".")
    return parts[:2] == ["llmtap", "store"] and any(p.startswith("_") for p in parts[2:3])


def test_nothing_outside_the_store_imports_a_private_store_module() -> None:
    found = []
    walked = 0
    for path, module in _modules(OUTSIDE):
        tree = ast.parse(path.read_text(), str(path))
        walked += 1
        for line, name in _imported(tree, module, path.name == "__init__.py"):
            if _private_store_module(name):
                found.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert walked > 50  # the walk saw the sources
    assert found == []


def _private_store_members() -> set[str]:
    names = {n for n in dir(SQLiteStore) if n.startswith("_") and not n.startswith("__")}
    return names | {
        n for n in SQLiteStore.__init__.__code__.co_names if n.startswith("_") and n[1] != "_"
    }


def test_nothing_outside_the_store_touches_a_private_member_of_a_store() -> None:
    """``store._reader()``, ``store._write(...)``: how the free functions reached into the
    store before there was one contract."""
    private = _private_store_members()
    assert {"_reader", "_write", "_writer", "_write_lock"} <= private
    found = []
    for path, _ in _modules(OUTSIDE):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in private
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} uses .{node.attr}")
    assert found == []


@pytest.mark.parametrize(
    ("source", "module", "bad"),
    [
        ("from ..store._admin import get_meta", "llmtap.server.x", True),
        ("from ...store import _users as users", "llmtap.server.dashboard.x", True),
        ("from llmtap.store import _derive", "bench.ingest", True),
        ("import llmtap.store._sqlite", "bench.ingest", True),
        ("from ..store import Store, open_store", "llmtap.server.x", False),
        ("from .._version import v", "llmtap.server.x", False),
    ],
)
def test_the_import_walk_sees_every_spelling(source: str, module: str, bad: bool) -> None:
    names: list[Any] = [name for _, name in _imported(ast.parse(source), module, False)]
    assert any(_private_store_module(n) for n in names) == bad, names


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_a_postgresql_server_that_is_down_is_one_clear_error_without_the_password(
    scheme: str,
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"{scheme}://llmtap:s3cret-pw@127.0.0.1:{port}/llmtap"
    with pytest.raises(StoreUnavailable) as caught:
        open_store(url)
    message = str(caught.value)
    assert "s3cret-pw" not in message
    assert f"{scheme}://llmtap:***@127.0.0.1:{port}/llmtap" in message
    assert "refused" in message.lower()
    assert len(message.splitlines()) == 1


@pytest.mark.parametrize(
    ("db", "shown"),
    [
        ("postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgres://u:p%40ss@h/db?sslmode=require", "postgres://u:***@h/db?sslmode=require"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        # libpq takes a password as a query parameter too
        (
            "postgresql://u@h/db?sslmode=require&password=s3cret&connect_timeout=5",
            "postgresql://u@h/db?sslmode=require&password=***&connect_timeout=5",
        ),
        (
            "postgresql://u:a@h/db?PassWord=b&sslpassword=c",
            "postgresql://u:***@h/db?PassWord=***&sslpassword=***",
        ),
        ("/tmp/x:pw@y.db", "/tmp/x:pw@y.db"),  # a file path is not a URL
        # libpq takes these unescaped; urlsplit ends the user part at "#", "?" or "/"
        ("postgresql://bob:ab#cdSECRET@h:1/db", "postgresql://bob:***@h:1/db"),
        ("postgresql://bob:a?bSECRET@h/db", "postgresql://bob:***@h/db"),
        ("postgresql://bob:a/bSECRET@h/db", "postgresql://bob:***@h/db"),
        ("postgresql://bob:a@bSECRET@h/db", "postgresql://bob:***@h/db"),
        ("postgres://bob:s3cretSECRET@[::1/db", "postgres://bob:***@[::1/db"),  # urlsplit refuses
    ],
)
def test_describe_db_masks_a_url_password(db: str, shown: str) -> None:
    assert describe_db(db) == shown


def test_a_url_libpq_cannot_parse_is_one_line_without_its_password() -> None:
    for url in (
        "postgres://bob:s3cretSECRET@[::1/db",
        "postgresql://bob:ab#cdSECRET@127.0.0.1:1/db",
    ):
        with pytest.raises(StoreUnavailable) as caught:
            open_store(url)
        assert "SECRET" not in str(caught.value) and len(str(caught.value).splitlines()) == 1
