"""What the SDK keeps is private: the spool (prompts and personal data) is its owner's alone,
refuses folders others own or can write, follows no symbolic link; the key stays out of reprs."""

from __future__ import annotations

import json
import os
import stat
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import llmtap
from llmtap.fake_provider import FakeProvider
from llmtap.sdk._spool import KIND_EVENTS, Spool, decode, encode, spool_directory

from ._clients import record_calls
from .conftest import Project, free_port, tap_config

KEY = "lt_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH"
NOBODY = 65534


def test_the_key_is_masked_in_reprs() -> None:
    config = llmtap.Config(api_key=KEY, url="http://127.0.0.1:1")
    for shown in (repr(config), str(config), repr(config.resolve())):
        assert KEY not in shown and KEY[6:12] not in shown, shown
        assert "api_key='lt_abc…'" in shown
        assert "url='http://127.0.0.1:1'" in shown


def client_for(provider: FakeProvider, project: Project, **config: Any) -> llmtap.Client:
    return llmtap.Client(
        api_key="sk",
        base_url=provider.base_url,
        max_retries=0,
        llmtap={**tap_config(project), **config},
    )


def record(client: llmtap.Client, n: int, name: str) -> None:
    record_calls(client, n, name, "my e-mail is x{i}@example.com")  # what a spool must guard


def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 20
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_spool_folders_and_files_are_the_owners_alone(
    provider: FakeProvider, project: Project, tmp_path: Path
) -> None:
    old = os.umask(0)  # the loosest: what is not asked for would be anyone's to write
    try:
        base = tmp_path / "cache" / "spool"
        url = f"http://127.0.0.1:{free_port()}"  # the server is down: batches stay spooled
        client = client_for(provider, project, url=url, spool_dir=str(base), flush_timeout=0.1)
        record(client, 12, "private")
        until(lambda: client.stats().spooled == 12)
        client.close()
    finally:
        os.umask(old)
    folder = spool_directory(url, project.key, str(base))
    files = [p for p in folder.iterdir() if ".batch" in p.name]
    assert files
    assert (mode(base.parent), mode(base), mode(folder)) == (0o700, 0o700, 0o700)
    assert {mode(p) for p in files} == {0o600}


def refused_folder(tmp_path: Path, how: str, folder: Path) -> Path | None:
    """Make ``folder`` (the spool's) unsafe in the way ``how`` says; what a symlink points at."""
    folder.parent.mkdir(parents=True, mode=0o700)
    if how == "a symbolic link":
        target = tmp_path / "elsewhere"
        target.mkdir(mode=0o700)
        folder.symlink_to(target)
        return target
    folder.mkdir(mode=0o700)
    if how == "writable by others":
        folder.chmod(0o777)
    elif how == "another user's":
        os.chown(folder, NOBODY, NOBODY)
    elif how == "in a parent others can write":
        folder.parent.chmod(0o777)  # no sticky bit: anyone may rename our folder away
    return None


@pytest.mark.parametrize(
    "how",
    ["writable by others", "a symbolic link", "another user's", "in a parent others can write"],
)
def test_an_unsafe_spool_folder_is_refused_and_events_still_go_out(
    provider: FakeProvider,
    project: Project,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    how: str,
) -> None:
    if how == "another user's" and os.geteuid() != 0:
        pytest.skip("giving a folder to another user takes root")
    base = tmp_path / "spool"
    folder = spool_directory(project.server.url, project.key, str(base))
    target = refused_folder(tmp_path, how, folder)
    client = client_for(provider, project, spool_dir=str(base))
    try:
        record(client, 3, "unsafe")
        assert client.flush(20)  # in memory only, but delivered
    finally:
        client.close()
    assert len(project.events(prompt_template_name="unsafe")) == 3
    assert [r for r in caplog.records if "cannot use the spool" in r.getMessage()]
    written = target if target is not None else folder
    assert not list(written.iterdir())  # nothing of ours was written there


def test_links_and_other_users_files_in_the_spool_are_never_sent(
    provider: FakeProvider, project: Project, tmp_path: Path
) -> None:
    base = tmp_path / "spool"
    folder = spool_directory(project.server.url, project.key, str(base))
    folder.mkdir(parents=True, mode=0o700)
    dead = 2**22 + 7  # above the usual pid_max: no such process

    def planted(name: str) -> tuple[str, bytes]:
        event_id = str(uuid.uuid4())
        event = {"id": event_id, "api": "chat", "status": "ok", "output_text": name}
        event["started_at"] = "2026-01-01T00:00:00Z"
        return event_id, encode(KIND_EVENTS, b'{"events":[%s]}' % json.dumps(event).encode())

    linked_id, linked_data = planted("linked")
    outside = tmp_path / "outside.batch"
    outside.write_bytes(linked_data)
    (folder / f"{1:020d}-1-aaaaaaaa.batch.{dead}").symlink_to(outside)
    foreign_id, foreign_data = planted("foreign")
    foreign = folder / f"{2:020d}-1-bbbbbbbb.batch.{dead}"
    foreign.write_bytes(foreign_data)
    if os.geteuid() == 0:
        os.chown(foreign, NOBODY, NOBODY)
    own_id, own_data = planted("own")  # a batch of ours a dead process left: taken over
    (folder / f"{3:020d}-1-cccccccc.batch.{dead}").write_bytes(own_data)

    client = client_for(provider, project, spool_dir=str(base))
    try:
        record(client, 1, "live")
        assert client.flush(20)
        assert client.stats().adopted == (1 if os.geteuid() == 0 else 2)
    finally:
        client.close()
    ids = {e["id"] for e in project.events()}
    assert own_id in ids and linked_id not in ids
    assert (foreign_id in ids) is (os.geteuid() != 0)
    assert outside.read_bytes() == linked_data  # the link's target is neither sent nor removed


_names = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_characters="/\0"), min_size=1, max_size=40),
    st.builds(
        lambda t, n, tail: f"{t:020d}-{n}-abcd{tail}",
        st.integers(0, 10**19),
        st.integers(0, 10**6),
        st.sampled_from(["", ".batch", ".batch.", ".batch.x", f".batch.{2**22 + 7}", ".batch.1"]),
    ),
    st.builds(lambda pid: f".tmp-{pid}-x", st.integers(0, 2**22 + 9)),
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            _names,
            st.one_of(
                st.binary(max_size=64),
                st.builds(lambda b: encode(KIND_EVENTS, b), st.binary(max_size=64)),
            ),
            st.sampled_from(["file", "link", "folder"]),
        ),
        max_size=8,
    )
)
def test_whatever_lies_in_the_spool_adoption_takes_only_intact_files_of_ours(
    planted: list[tuple[str, bytes, str]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "spool" / "0123456789abcdef"
        folder.mkdir(parents=True, mode=0o700)
        outside = Path(tmp) / "outside"
        outside.write_bytes(encode(KIND_EVENTS, b'{"events":[]}'))
        for name, data, kind in planted:
            path = folder / name
            if name in (".", "..") or path.exists() or path.is_symlink():
                continue
            if kind == "link":
                path.symlink_to(outside)
            elif kind == "folder":
                path.mkdir()
            else:
                path.write_bytes(data)
        spool = Spool(folder, 1 << 20)
        for entry in spool.adopt():
            assert entry.path is not None
            info = os.lstat(entry.path)
            assert stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid()
            payload = spool.read(entry)
            assert payload is None or decode(entry.path.read_bytes()) == (entry.kind, payload)
        assert outside.read_bytes() == encode(KIND_EVENTS, b'{"events":[]}')


def test_a_password_in_the_servers_url_is_never_logged(
    provider: FakeProvider, project: Project, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"http://svc:hunter2@127.0.0.1:{free_port()}"  # down: the sender warns
    client = client_for(provider, project, url=url, spool_dir=str(tmp_path), flush_timeout=0.1)
    try:
        with caplog.at_level("WARNING", logger="llmtap"):
            record(client, 2, "secret-url")
            until(lambda: "unreachable" in caplog.text)
    finally:
        client.close()
    assert "hunter2" not in caplog.text and "127.0.0.1" in caplog.text
