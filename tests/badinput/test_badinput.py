"""The bad-input corpus: broken pipeline configs and malformed API answers, through the CLI.

Each case must end in one line on stderr naming the file, field, record or page, the
documented exit code (2 a bad config, 1 a failed run), no traceback unless `--debug`
(and one with it), and nothing written: no destination file, no cursor moved.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from bizon_core.config import load_pipeline
from bizon_core.sync.sqlite_store import SqliteStateStore
from bizon_core.sync.state import StreamKey
from bizon_core.testing import FakeApiServer, Fault
from bizon_core.yamlfile import read_yaml

HERE = Path(__file__).parent
CONFIGS = HERE / "configs"
CONFIG_CASES: dict[str, dict[str, Any]] = tomllib.loads((CONFIGS / "manifest.toml").read_text())
ANSWER_CASES: dict[str, dict[str, Any]] = tomllib.loads((HERE / "answers.toml").read_text())
API_PIPELINE = HERE / "api_pipeline.yml"
API_KEY = StreamKey("badinput_api", "paged", "users")
CONTENT_TYPES = {"html": "text/html", "text": "text/plain", "json": "application/json"}


def assert_one_error_line(err: str, *fragments: str) -> None:
    """One `error:` line holding every fragment; anything else is a log line (progress)."""
    lines = err.splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, err
    assert all(line.startswith(("INFO ", "WARNING ")) for line in lines if line not in errors)
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])


def test_the_manifest_covers_every_config_of_the_corpus():
    assert set(CONFIG_CASES) == {p.name for p in CONFIGS.glob("*.yml")}
    assert len(CONFIG_CASES) + len(ANSWER_CASES) >= 30


@pytest.mark.parametrize("name", sorted(CONFIG_CASES))
@pytest.mark.parametrize("command", ["check", "run"])
def test_a_broken_config(name: str, command: str, cli, isolated: Path):
    case, path = CONFIG_CASES[name], CONFIGS / name

    code, out, err = cli(command, path)
    assert code == case["exit"]
    assert out == ""
    assert err.count("\n") == 1
    assert_one_error_line(err, f"error: {path}: ", *case["error"])

    code, out, err = cli(command, path, "--debug")
    assert code == case["exit"]
    assert "Traceback" in err
    assert err.splitlines()[-1].startswith(f"error: {path}: ")

    assert list(isolated.iterdir()) == []  # no state file, no output, nothing


def _fault(case: dict[str, Any]) -> Fault:
    (kind,) = [k for k in CONTENT_TYPES if k in case]
    return Fault(
        status=case.get("status", 200),
        body=case[kind],
        headers={"Content-Type": CONTENT_TYPES[kind]},
        path="/cursor/users",
        nth=case.get("page", 1),
    )


@pytest.mark.parametrize("name", sorted(ANSWER_CASES))
def test_a_malformed_api_answer(name: str, cli, server: FakeApiServer, monkeypatch, isolated):
    case = ANSWER_CASES[name]
    page = case.get("page", 1)
    monkeypatch.setenv("BADINPUT_API_URL", server.url)
    assert cli("run", API_PIPELINE)[0] == 0
    output = isolated / "out" / "users.jsonl"
    committed = output.read_bytes()
    store = SqliteStateStore()
    cursor = store.last_success(API_KEY)
    assert cursor is not None

    server.inject(_fault(case))
    code, out, err = cli("run", API_PIPELINE)
    assert code == 1
    assert out == ""
    assert_one_error_line(err, f"source 'paged' stream 'users': page {page}: ", *case["error"])
    assert output.read_bytes() == committed
    assert store.last_success(API_KEY) == cursor
    if page == 1:
        assert store.resume_point(API_KEY) is None  # nothing fetched, nothing to resume

    server.inject(_fault(case))
    code, out, err = cli("run", API_PIPELINE, "--no-resume", "--debug")
    assert code == 1
    assert "Traceback" in err
    assert err.splitlines()[-1].startswith("error: source 'paged' stream 'users'")
    assert output.read_bytes() == committed
    assert store.last_success(API_KEY) == cursor


def test_a_destination_path_that_is_a_directory(cli, server, monkeypatch, isolated: Path):
    monkeypatch.setenv("BADINPUT_API_URL", server.url)
    (isolated / "out" / "users.jsonl").mkdir(parents=True)

    code, out, err = cli("check", API_PIPELINE)
    assert code == 1
    assert "destination 'file': connection FAILED: " in out and "is a directory" in out

    code, out, err = cli("run", API_PIPELINE)
    assert code == 1
    assert_one_error_line(err, "destination 'file': ", "users.jsonl is a directory")
    assert sorted(p.name for p in (isolated / "out").iterdir()) == ["users.jsonl"]
    assert list((isolated / "out" / "users.jsonl").iterdir()) == []
    assert SqliteStateStore().last_success(API_KEY) is None


def test_anchors_merges_and_nesting_within_bounds_are_read(isolated: Path):
    path = isolated / "fine.yml"
    path.write_text(
        "base: &base {a: 1, b: 2}\n"
        "merged: {<<: *base, b: 3}\n"
        "shared: [*base, *base]\n"
        f"deep: {'[' * 60}{']' * 60}\n"
    )
    data = read_yaml(path)
    assert data["merged"] == {"a": 1, "b": 3}  # an explicit key overrides a merged one
    assert data["shared"] == [{"a": 1, "b": 2}] * 2
    depth, value = 0, data["deep"]
    while value:
        depth, value = depth + 1, value[0]
    assert depth == 59


def test_a_pipeline_using_aliases_loads(isolated: Path):
    path = isolated / "aliases.yml"
    path.write_text(
        "name: aliases\n"
        "source: {name: paged, stream: users, base_url: &url 'http://127.0.0.1:9'}\n"
        "destination: {name: file, config: {path: 'out/{stream}.jsonl'}}\n"
        "asset_key_prefix: [&layer raw, *layer]\n"
    )
    pipeline = load_pipeline(path)
    assert pipeline.config.asset_key_prefix == ["raw", "raw"]
    assert pipeline.source_configs["users"].base_url == "http://127.0.0.1:9"
