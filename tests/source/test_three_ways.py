"""One API connector written three ways — the seed's hand-written `get()` (`myapi`), a
`RestSource` (`myapi_rest`) and the declarative `rest_api` YAML — loads the same records,
full and incremental, from the same local API."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DECLARATIVE = REPO / "tests" / "fixtures" / "three_ways" / "myapi.yml"
TOKEN = "three-ways-t0ken"
WAYS = ("myapi", "myapi_rest", "rest_api")


@pytest.fixture
def myapi_server(myapi, monkeypatch):
    monkeypatch.setenv("MYAPI_TOKEN", TOKEN)
    return myapi


def pipeline(way: str, stream: str, server_url: str, tmp_path: Path) -> Path:
    source = yaml.safe_load(DECLARATIVE.read_text())["source"] if way == "rest_api" else {}
    source.update(
        name=way,
        stream=stream,
        sync_mode="incremental",
        cursor_field="updated_at",
        authentication={"type": "api_key", "params": {"token": TOKEN}},
    )
    if way != "myapi":
        source["base_url"] = server_url
    config = {
        "name": f"three_ways_{way}",
        "source": source,
        "destination": {"name": "file", "config": {"path": str(tmp_path / way / "{stream}.jsonl")}},
    }
    path = tmp_path / f"{way}.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def loaded(tmp_path: Path, way: str, stream: str) -> list[tuple[str, str]]:
    rows = [
        orjson.loads(line)
        for line in (tmp_path / way / f"{stream}.jsonl").read_bytes().splitlines()
    ]
    return [(row["id"], row["data"]["name"]) for row in rows]


@pytest.mark.parametrize("stream", ["users", "orders"])
def test_the_three_ways_load_the_same_records(stream, cli, api, myapi_server, tmp_path):
    paths = {way: pipeline(way, stream, myapi_server.url, tmp_path) for way in WAYS}
    for path in paths.values():
        assert cli("run", path)[0] == 0
    api.upsert(stream, {**api.get(stream, 7), "name": "edited"})
    for way, path in paths.items():
        code, out, err = cli("run", path)
        assert code == 0, err
        assert f"{stream}: 1 records" in out, way
    reference = loaded(tmp_path, "myapi", stream)
    assert len(reference) == 26 and reference[-1] == ("7", "edited")
    for way in WAYS[1:]:
        assert loaded(tmp_path, way, stream) == reference, way
