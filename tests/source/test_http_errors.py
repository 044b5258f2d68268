"""An error answer raises `HttpError` instead of being parsed as data (unless asked)."""

from __future__ import annotations

import pickle
import textwrap
from pathlib import Path

import pytest
import requests
import yaml

from bizon_core.errors import HttpError, SourceError
from bizon_core.secrets import register_secret
from bizon_core.source.session import build_session
from bizon_core.sync.sqlite_store import SqliteStateStore
from bizon_core.sync.state import StreamKey
from bizon_core.testing import FakeApi, FakeApiServer, make_records

JSON = {"Content-Type": "application/json"}

# The seed's minimal source: it never calls raise_for_status() and reads data["items"].
BARE_SOURCE = textwrap.dedent(
    """
    from bizon_core.source.auth.builder import AuthBuilder
    from bizon_core.source.config import SourceConfig
    from bizon_core.source.models import SourceIteration, SourceRecord
    from bizon_core.source.source import AbstractSource


    class BareConfig(SourceConfig):
        base_url: str


    class BareSource(AbstractSource):
        @staticmethod
        def streams():
            return ["users"]

        @staticmethod
        def get_config_class():
            return BareConfig

        def get_authenticator(self):
            return AuthBuilder.from_config(self.config.authentication)

        def check_connection(self):
            return True, None

        def get(self, pagination=None):
            url = f"{self.config.base_url}/cursor/users"
            data = self.session.get(url, params=pagination or {}).json()
            records = [SourceRecord(id=r["id"], data=r) for r in data["items"]]
            nxt = {"cursor": data["next_cursor"]} if data.get("next_cursor") else {}
            return SourceIteration(records=records, next_pagination=nxt)
    """
)


def test_an_error_answer_raises_with_status_method_and_masked_url(scripted) -> None:
    register_secret("path-token-3456")
    body = {"error": "unauthorized", "detail": "token path-token-3456 " + "x" * 500}
    path = "/v1/path-token-3456/users"
    scripted.add(path, 401, body, headers=JSON)
    url = scripted.url.replace("http://", "http://me:pw-secret@") + path
    with pytest.raises(HttpError) as raised:
        build_session().get(url, params={"api_key": "q-secret"})
    error = raised.value
    message = str(error)
    assert message.startswith(
        f'GET {scripted.url}/v1/***/users: HTTP 401 Unauthorized: {{"error":"unauthorized",'
    )
    assert '"detail":"token *** xxx' in message and message.endswith("x…")
    assert len(message) < len(f"GET {scripted.url}/v1/***/users: HTTP 401 Unauthorized: ") + 210
    assert "secret" not in message and "path-token" not in message and "\n" not in message
    assert (error.status, error.method, error.url) == (401, "GET", f"{scripted.url}/v1/***/users")
    assert isinstance(error, SourceError) and isinstance(error, requests.HTTPError)
    assert error.response.status_code == 401 and error.response.json() == body
    assert len(scripted.requests) == 1
    copy = pickle.loads(pickle.dumps(error))  # e.g. across a process boundary
    assert (str(copy), copy.status, copy.url) == (message, 401, error.url)


def test_an_html_error_page_is_not_quoted(scripted) -> None:
    scripted.add(
        "/x", 403, b"<html><body>Forbidden</body></html>", headers={"Content-Type": "text/html"}
    )
    with pytest.raises(HttpError) as raised:
        build_session().get(f"{scripted.url}/x")
    assert str(raised.value) == f"GET {scripted.url}/x: HTTP 403 Forbidden"


def test_the_opt_out_returns_the_error_answer(scripted) -> None:
    scripted.add("/x", 404, {"error": "gone"}, headers=JSON).add("/x", 200, {"ok": True})
    session = build_session()
    response = session.get(f"{scripted.url}/x", raise_for_status=False)
    assert (response.status_code, response.json()) == (404, {"error": "gone"})
    with pytest.raises(requests.HTTPError):
        response.raise_for_status()  # still works, as in requests
    ok = session.get(f"{scripted.url}/x")
    assert ok.raise_for_status() is None and ok.json() == {"ok": True}


def test_a_connector_without_raise_for_status_fails_with_the_http_error(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: `KeyError: 'items'` (the 401 body parsed as a page). At the shipped defaults."""
    connectors = tmp_path / "connectors"
    (connectors / "sources" / "bare_minimal" / "src").mkdir(parents=True)
    (connectors / "sources" / "bare_minimal" / "src" / "source.py").write_text(BARE_SOURCE)
    monkeypatch.setenv("BIZON_CONNECTORS_PATH", str(connectors))
    monkeypatch.setenv("BARE_TOKEN", "good-token-7890")
    api = FakeApi({"users": make_records(12)})
    with FakeApiServer(api, required_headers={"Authorization": "Bearer good-token-7890"}) as server:
        config = {
            "name": "bare",
            "source": {
                "name": "bare_minimal",
                "stream": "users",
                "base_url": server.url,
                "authentication": {"type": "bearer", "params": {"token": "env://BARE_TOKEN"}},
            },
            "destination": {"name": "file", "config": {"path": str(tmp_path / "users.jsonl")}},
        }
        pipeline = tmp_path / "bare.yml"
        pipeline.write_text(yaml.safe_dump(config))
        assert cli("run", pipeline)[0] == 0
        before = (tmp_path / "users.jsonl").read_bytes()
        key = StreamKey("bare", "bare_minimal", "users")
        state_before = SqliteStateStore().last_success(key)

        monkeypatch.setenv("BARE_TOKEN", "revoked-token-1234")
        code, out, err = cli("run", pipeline)
    assert code == 1
    [line] = [line for line in err.splitlines() if line.startswith("error: ")]
    assert line == (
        "error: source 'bare_minimal' stream 'users': page 1: GET "
        f'{server.url}/cursor/users: HTTP 401 Unauthorized: {{"error":"unauthorized"}}'
    )
    assert "Traceback" not in err and "KeyError" not in err + out
    assert "revoked-token" not in err + out
    assert (tmp_path / "users.jsonl").read_bytes() == before
    assert SqliteStateStore().last_success(key) == state_before
