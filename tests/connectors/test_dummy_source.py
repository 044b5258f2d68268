"""The built-in `dummy` source, against its in-process fake API."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from bizon_core.config import load_pipeline
from bizon_core.discovery import ConnectorKind, get_connector, load_connector_class
from bizon_core.errors import ConfigError
from bizon_core.source.models import SourceIncrementalState, SourceRecord
from bizon_core.source.source import AbstractSource

EXAMPLES = Path(__file__).resolve().parents[2] / "connectors" / "sources" / "dummy" / "config"
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
API_KEY = {"type": "api_key", "params": {"token": "dummy-api-key"}}
OAUTH = {
    "type": "oauth",
    "params": {
        "token_refresh_endpoint": "https://api.dummy.com/oauth/token",
        "grant_type": "client_credentials",
        "client_id": "dummy-client",
        "client_secret": "dummy-client-secret",
    },
}

MakeSource = Callable[..., AbstractSource]


@pytest.fixture
def source_class() -> type[AbstractSource]:
    return load_connector_class(get_connector(ConnectorKind.SOURCE, "dummy"))


@pytest.fixture
def make_source(source_class: type[AbstractSource]) -> Iterator[MakeSource]:
    made: list[AbstractSource] = []

    def make(stream: str = "creatures", **config: Any) -> AbstractSource:
        config.setdefault("authentication", API_KEY)
        source_config = source_class.get_config_class().model_validate(
            {"name": "dummy", "stream": stream, **config}
        )
        source = source_class(source_config)
        made.append(source)
        return source

    yield make
    for source in made:
        source.close()


def read_all(
    fetch: Callable[[dict | None], Any], max_pages: int = 20
) -> tuple[list[SourceRecord], list[dict]]:
    """Follow `next_pagination` until `{}`; return the records and each page's pagination."""
    records: list[SourceRecord] = []
    paginations: list[dict] = []
    pagination: dict | None = None
    for _ in range(max_pages):
        page = fetch(pagination)
        records.extend(page.records)
        paginations.append(page.next_pagination)
        if page.next_pagination == {}:
            return records, paginations
        pagination = page.next_pagination
    raise AssertionError(f"no end of pagination after {max_pages} pages")


def after(source: AbstractSource, last_run: datetime) -> Callable[[dict | None], Any]:
    state = SourceIncrementalState(last_run=last_run, cursor_field="updated_at")
    return lambda pagination: source.get_records_after(state, pagination)


def test_streams_and_config_class(source_class: type[AbstractSource]):
    assert source_class.streams() == ["creatures", "plants"]
    assert source_class.supports_incremental()
    config_class = source_class.get_config_class()
    assert config_class.model_validate({"name": "dummy", "stream": "plants"}).page_size == 10


@pytest.mark.parametrize("stream", ["creatures", "plants"])
def test_stream_pages_through_25_records_with_a_cursor(make_source: MakeSource, stream: str):
    source = make_source(stream)
    records, paginations = read_all(source.get)

    assert paginations == [{"cursor": "10"}, {"cursor": "20"}, {}]
    assert [r.id for r in records] == [str(i) for i in range(1, 26)]
    assert all(r.data["name"] == f"{stream[:-1]}-{r.id}" for r in records)


@pytest.mark.parametrize("stream", ["creatures", "plants"])
def test_total_records_count(make_source: MakeSource, stream: str):
    assert make_source(stream).get_total_records_count() == 25


def test_page_size_sets_the_number_of_pages(make_source: MakeSource):
    records, paginations = read_all(make_source("plants", page_size=7).get)
    assert len(records) == 25
    assert len(paginations) == 4


@pytest.mark.parametrize("stream", ["creatures", "plants"])
def test_records_after_the_last_one_are_none(make_source: MakeSource, stream: str):
    records, paginations = read_all(after(make_source(stream), EPOCH + timedelta(days=30)))
    assert records == []
    assert paginations == [{}]


def test_records_after_a_moment_in_the_middle_are_only_the_later_ones(make_source: MakeSource):
    # creature i is updated at EPOCH + i hours, plant i at EPOCH + 2i hours.
    last_run = EPOCH + timedelta(hours=20)

    creatures, _ = read_all(after(make_source("creatures"), last_run))
    assert [r.id for r in creatures] == [str(i) for i in range(21, 26)]

    plants, paginations = read_all(after(make_source("plants"), last_run))
    assert [r.id for r in plants] == [str(i) for i in range(11, 26)]
    assert len(paginations) == 2
    assert all(datetime.fromisoformat(r.data["updated_at"]) > last_run for r in plants)


def test_records_after_the_epoch_are_all(make_source: MakeSource):
    records, _ = read_all(after(make_source("creatures"), EPOCH))
    assert len(records) == 25


def test_check_connection_with_a_token(make_source: MakeSource):
    assert make_source().check_connection() == (True, None)


def test_check_connection_with_an_empty_token_is_refused(make_source: MakeSource):
    source = make_source(authentication={"type": "api_key", "params": {"token": ""}})
    ok, reason = source.check_connection()
    assert ok is False
    assert reason is not None
    assert "401" in reason
    assert "unauthorized" in reason.lower()


def test_oauth_client_credentials_obtains_a_token_and_reads(make_source: MakeSource):
    source = make_source("plants", authentication=OAUTH, page_size=5)
    assert source.check_connection() == (True, None)

    records, paginations = read_all(source.get)
    assert len(records) == 25
    assert len(paginations) == 5

    token = source.session.auth.get_access_token()
    assert token.startswith("dummy-oauth-")


def test_oauth_with_an_unknown_token_refreshes_it(make_source: MakeSource):
    # A token the fake API never issued is answered 401: the authenticator fetches a new one.
    oauth = {"type": "oauth", "params": {**OAUTH["params"], "access_token": "dummy-oauth-stale"}}
    source = make_source(authentication=oauth)
    page = source.get(None)
    assert len(page.records) == 10
    assert source.session.auth.get_access_token() != "dummy-oauth-stale"


EXAMPLE_FILES = sorted(EXAMPLES.glob("*.example.yml"))
CLIENT_SECRET = "a-client-secret-from-the-env"


def test_the_examples_are_there():
    assert {p.name for p in EXAMPLE_FILES} >= {"dummy.example.yml", "dummy_oauth.example.yml"}


@pytest.mark.parametrize("example", EXAMPLE_FILES, ids=lambda p: p.name)
def test_example_config_loads_and_reads(
    example: Path, source_class: type[AbstractSource], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("DUMMY_CLIENT_SECRET", CLIENT_SECRET)
    raw = yaml.safe_load(example.read_text(encoding="utf-8"))
    raw_source = raw["source"]

    pipeline = load_pipeline(example)

    assert pipeline.name == raw["name"]
    assert pipeline.source_class is source_class
    assert pipeline.streams == raw_source.get("streams", [raw_source.get("stream")])
    assert pipeline.destination_info.name == raw["destination"]["name"]
    for config in pipeline.source_configs.values():
        assert config.sync_mode == raw_source.get("sync_mode", "full_refresh")
        assert config.page_size == raw_source.get("page_size", 10)
        assert config.authentication is not None
        assert config.authentication.type == raw_source["authentication"]["type"]
        for key, value in raw_source["authentication"]["params"].items():
            expected = CLIENT_SECRET if value == "env://DUMMY_CLIENT_SECRET" else value
            assert getattr(config.authentication.params, key) == expected
    assert CLIENT_SECRET not in str(pipeline.masked())

    # The example really works against the fake API (api_key or OAuth2 alike).
    stream = pipeline.streams[-1]
    source = source_class(pipeline.source_configs[stream])
    try:
        assert source.check_connection() == (True, None)
        records, _ = read_all(source.get)
    finally:
        source.close()
    assert len(records) == 25


def test_oauth_example_with_the_secret_from_the_environment(
    tmp_path: Path, source_class: type[AbstractSource], monkeypatch: pytest.MonkeyPatch
):
    raw = yaml.safe_load((EXAMPLES / "dummy_oauth.example.yml").read_text(encoding="utf-8"))
    raw["source"]["authentication"]["params"]["client_secret"] = "env://DUMMY_CLIENT_SECRET"
    example = tmp_path / "oauth.yml"
    example.write_text(yaml.safe_dump(raw))

    monkeypatch.delenv("DUMMY_CLIENT_SECRET", raising=False)
    with pytest.raises(ConfigError, match="DUMMY_CLIENT_SECRET"):
        load_pipeline(example)

    monkeypatch.setenv("DUMMY_CLIENT_SECRET", CLIENT_SECRET)
    pipeline = load_pipeline(example)
    config = pipeline.source_configs[pipeline.streams[0]]
    assert config.authentication.params.client_secret == CLIENT_SECRET
    assert CLIENT_SECRET not in str(pipeline.masked())
    source = source_class(config)
    try:
        assert len(source.get(None).records) == config.page_size
    finally:
        source.close()
