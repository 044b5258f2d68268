"""Authenticators as a real local server sees them: headers, cookies and OAuth2 token flows."""

from __future__ import annotations

import base64
import socket
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import requests
from pydantic import ValidationError
from requests.auth import AuthBase

from bizon_core.errors import ConfigError, HttpError, SourceError
from bizon_core.secrets import redact
from bizon_core.source.auth.authenticators.basic import BasicHttpAuth, BasicHttpAuthParams
from bizon_core.source.auth.authenticators.cookies import CookiesAuth, CookiesAuthParams
from bizon_core.source.auth.authenticators.oauth import Oauth2Authenticator, Oauth2AuthParams
from bizon_core.source.auth.authenticators.token import TokenAuth, TokenAuthParams
from bizon_core.source.auth.builder import AuthBuilder
from bizon_core.source.auth.config import AuthConfig, AuthType
from bizon_core.source.config import HttpConfig, SourceConfig
from bizon_core.source.session import build_session
from bizon_core.testing import FakeApi, FakeApiServer, Fault

FAST_BACKOFF = {"backoff_factor": 0.01, "max_backoff": 0.05}
FAST = HttpConfig(**FAST_BACKOFF)
CLIENT_SECRET = "client-secret-0001"
REFRESH_TOKEN = "refresh-token-0001"


def get(scripted, auth: AuthBase | None, path: str = "/data", **kwargs) -> requests.Response:
    return build_session(auth=auth, settings=FAST).get(f"{scripted.url}{path}", **kwargs)


def from_config(auth_type: str, params: dict) -> AuthBase | None:
    return AuthBuilder.from_config(AuthConfig.model_validate({"type": auth_type, "params": params}))


def oauth_params(scripted, **overrides) -> Oauth2AuthParams:
    fields = {
        "token_refresh_endpoint": f"{scripted.url}/token",
        "client_id": "client-1",
        "client_secret": CLIENT_SECRET,
        "refresh_token": REFRESH_TOKEN,
    }
    return Oauth2AuthParams(**{**fields, **overrides})


def bearers(scripted, path: str = "/data") -> list[str]:
    return [r.headers["Authorization"] for r in scripted.received(path)]


def test_api_key_in_a_custom_header_without_method(scripted) -> None:
    scripted.add("/data", 200)
    auth = from_config(
        "api_key", {"token": "abc-key", "auth_method": "", "auth_header": "X-API-Key"}
    )
    assert get(scripted, auth).status_code == 200
    [request] = scripted.requests
    assert request.headers["X-API-Key"] == "abc-key"
    assert "Authorization" not in request.headers


@pytest.mark.parametrize("auth_type", [AuthType.API_KEY, AuthType.BEARER])
def test_token_defaults_to_a_bearer_authorization(scripted, auth_type: AuthType) -> None:
    scripted.add("/data", 200)
    get(scripted, from_config(auth_type, {"token": "tok-1234"}))
    assert bearers(scripted) == ["Bearer tok-1234"]
    assert redact("tok-1234") == "***"


def test_the_connector_contract_usage(scripted) -> None:
    config = SourceConfig(
        name="myapi",
        stream="users",
        authentication=AuthConfig(type=AuthType.API_KEY, params=TokenAuthParams(token="t0ken-5")),
    )
    auth = AuthBuilder.token(params=TokenAuthParams(token=config.authentication.params.token))
    scripted.add("/data", 200)
    get(scripted, auth)
    assert bearers(scripted) == ["Bearer t0ken-5"]


def test_basic(scripted) -> None:
    scripted.add("/data", 200)
    auth = AuthBuilder.basic(BasicHttpAuthParams(username="ada", password="pa55-word"))
    get(scripted, auth)
    assert bearers(scripted) == ["Basic " + base64.b64encode(b"ada:pa55-word").decode()]
    assert redact("pa55-word") == "***"


def test_cookies_merge_with_the_request_cookies(scripted) -> None:
    scripted.add("/data", 200).add("/data", 200)
    auth = AuthBuilder.cookies(CookiesAuthParams(cookies={"session": "s-1234", "lang": "fr"}))
    get(scripted, auth)
    get(scripted, auth, cookies={"theme": "dark", "lang": "en"})
    cookies = [r.headers["Cookie"] for r in scripted.requests]
    assert cookies == ["session=s-1234; lang=fr", "theme=dark; session=s-1234; lang=fr"]


@pytest.mark.parametrize(
    ("auth_type", "params", "authenticator"),
    [
        ("api_key", {"token": "t"}, TokenAuth),
        ("bearer", {"token": "t"}, TokenAuth),
        ("basic", {"username": "u", "password": "p"}, BasicHttpAuth),
        ("cookies", {"cookies": {"c": "v"}}, CookiesAuth),
        (
            "oauth",
            {
                "token_refresh_endpoint": "https://x/t",
                "client_id": "c",
                "client_secret": "s",
                "grant_type": "client_credentials",
            },
            Oauth2Authenticator,
        ),
    ],
)
def test_from_config_dispatches_on_the_type(auth_type: str, params: dict, authenticator) -> None:
    assert type(from_config(auth_type, params)) is authenticator


def test_from_config_without_authentication_is_none() -> None:
    assert AuthBuilder.from_config(None) is None


def test_from_config_refuses_params_of_another_type() -> None:
    config = AuthConfig(type=AuthType.BASIC, params=TokenAuthParams(token="x"))
    with pytest.raises(ConfigError, match="type 'basic' does not take TokenAuthParams"):
        AuthBuilder.from_config(config)


def test_oauth_refresh_token_grant_keeps_a_rotated_refresh_token(scripted) -> None:
    scripted.add("/token", 200, {"access_token": "at-1", "expires_in": 30, "refresh_token": "rt-2"})
    scripted.add("/token", 200, {"access_token": "at-2", "expires_in": 3600})
    scripted.add("/data", 200, {"n": 1}).add("/data", 200, {"n": 2}).add("/data", 200)
    session = build_session(auth=from_config("oauth", oauth_params(scripted).model_dump()))
    for _ in range(3):
        session.get(f"{scripted.url}/data")
    base = {"grant_type": "refresh_token", "client_id": "client-1", "client_secret": CLIENT_SECRET}
    # expires_in 30 is within the 60 s margin: the second request refreshes first.
    assert [r.form for r in scripted.received("/token")] == [
        {**base, "refresh_token": REFRESH_TOKEN},
        {**base, "refresh_token": "rt-2"},
    ]
    assert bearers(scripted) == ["Bearer at-1", "Bearer at-2", "Bearer at-2"]
    assert redact("at-1 rt-2") == "*** ***"


def test_oauth_client_credentials_grant_with_scopes(scripted) -> None:
    scripted.add("/token", 200, {"access_token": "cc-token-1", "expires_in": 3600})
    scripted.add("/data", 200).add("/data", 200)
    params = oauth_params(
        scripted, grant_type="client_credentials", refresh_token=None, scopes=["read", "write"]
    )
    auth = AuthBuilder.oauth2(params)
    get(scripted, auth)
    get(scripted, auth)
    [token_request] = scripted.received("/token")
    assert token_request.method == "POST"
    assert token_request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert token_request.form == {
        "grant_type": "client_credentials",
        "client_id": "client-1",
        "client_secret": CLIENT_SECRET,
        "scope": "read write",
    }
    assert "Authorization" not in token_request.headers
    assert bearers(scripted) == ["Bearer cc-token-1"] * 2


def test_oauth_uses_a_given_token_until_it_nears_expiry(scripted) -> None:
    scripted.add("/token", 200, {"access_token": "fresh-1"})
    scripted.add("/data", 200).add("/data", 200)
    soon = datetime.now(UTC) + timedelta(seconds=30)
    later = datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=1)  # naive is UTC
    get(
        scripted,
        AuthBuilder.oauth2(oauth_params(scripted, access_token="given-1", token_expiry_date=later)),
    )
    get(
        scripted,
        AuthBuilder.oauth2(oauth_params(scripted, access_token="given-2", token_expiry_date=soon)),
    )
    assert bearers(scripted) == ["Bearer given-1", "Bearer fresh-1"]
    assert len(scripted.received("/token")) == 1


def test_oauth_custom_response_fields(scripted) -> None:
    scripted.add("/token", 200, {"token": "custom-1", "ttl": 10})
    scripted.add("/token", 200, {"token": "custom-2", "ttl": 10})
    scripted.add("/data", 200).add("/data", 200)
    params = oauth_params(
        scripted,
        response_field_access_token="token",
        response_field_expires_in="ttl",
        refresh_before_expiry_seconds=5,
    )
    auth = AuthBuilder.oauth2(params)
    get(scripted, auth)
    get(scripted, auth)
    assert bearers(scripted) == ["Bearer custom-1"] * 2


def test_oauth_refreshes_once_on_a_401_and_resends(scripted) -> None:
    scripted.add("/token", 200, {"access_token": "old-1"}).add(
        "/token", 200, {"access_token": "new-1"}
    )
    scripted.add("/data", 401, {"error": "expired"}).add("/data", 200, {"ok": True})
    response = get(scripted, AuthBuilder.oauth2(oauth_params(scripted)), params={"q": "1"})
    assert response.status_code == 200 and response.json() == {"ok": True}
    assert [r.status_code for r in response.history] == [401]
    assert bearers(scripted) == ["Bearer old-1", "Bearer new-1"]
    assert [r.query for r in scripted.received("/data")] == [{"q": "1"}] * 2
    assert len(scripted.received("/token")) == 2


@pytest.mark.parametrize("raise_for_status", [True, False])
def test_oauth_a_second_401_is_not_refreshed_again(scripted, raise_for_status: bool) -> None:
    scripted.add("/token", 200, {"access_token": "old-2"}).add(
        "/token", 200, {"access_token": "new-2"}
    )
    scripted.add("/data", 401, {"error": "no"}).add("/data", 401, {"error": "still no"})
    scripted.add("/data", 200)
    auth = AuthBuilder.oauth2(oauth_params(scripted))
    if raise_for_status:
        with pytest.raises(HttpError, match=r"/data: HTTP 401 Unauthorized$") as raised:
            get(scripted, auth)
        response = raised.value.response
    else:
        response = get(scripted, auth, raise_for_status=False)
    assert response.status_code == 401 and response.json() == {"error": "still no"}
    assert bearers(scripted) == ["Bearer old-2", "Bearer new-2"]
    assert len(scripted.received("/token")) == 2
    assert "new-2" not in str(response.headers)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            400,
            {"error": "invalid_grant", "error_description": REFRESH_TOKEN},
            "HTTP 400 (invalid_grant)",
        ),
        (401, b"denied", "HTTP 401"),
        (200, {"token_type": "bearer"}, "returned no 'access_token' (HTTP 200)"),
        (200, b"<html>", "returned no 'access_token' (HTTP 200)"),
    ],
)
def test_oauth_token_endpoint_failure(scripted, status, body, expected: str) -> None:
    scripted.add("/token", status, body)
    with pytest.raises(SourceError) as raised:
        get(scripted, AuthBuilder.oauth2(oauth_params(scripted)))
    message = str(raised.value)
    assert f"{scripted.url}/token" in message and expected in message
    assert "\n" not in message
    assert CLIENT_SECRET not in message and REFRESH_TOKEN not in message
    assert not scripted.received("/data")


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (Fault(status=503), "failed with HTTP 503"),
        (Fault(status=500), "failed with HTTP 500"),
        (Fault(kind="reset"), "failed: ConnectionError"),
    ],
)
def test_oauth_a_refresh_token_grant_is_not_replayed(fault: Fault, expected: str) -> None:
    """The server may have spent (rotated) the refresh token: sending it again would fail
    or, worse, be taken as a replay. At the shipped defaults, retries on."""
    api = FakeApi({"users": []})
    with FakeApiServer(api, require_oauth=True, refresh_token=REFRESH_TOKEN) as server:
        server.inject(replace(fault, path="/oauth/token"))
        params = Oauth2AuthParams(
            token_refresh_endpoint=f"{server.url}/oauth/token",
            client_id=server.client_id,
            client_secret=server.client_secret,
            refresh_token=REFRESH_TOKEN,
        )
        session = build_session(auth=AuthBuilder.oauth2(params))
        with pytest.raises(SourceError, match=rf"/oauth/token {expected}") as raised:
            session.get(f"{server.url}/count/users")
        assert [r.path for r in server.requests] == ["/oauth/token"]
        assert server.tokens_issued == 0 and server.pending_faults == []
        assert REFRESH_TOKEN not in str(raised.value)
        # The next request (the next attempt of the run) asks again, and gets through.
        assert session.get(f"{server.url}/count/users").json() == {"count": 0}
        assert [r.path for r in server.requests].count("/oauth/token") == 2


@pytest.mark.parametrize("fault", [Fault(status=503), Fault(kind="reset")])
def test_oauth_a_client_credentials_grant_is_retried(fault: Fault) -> None:
    """Asking again for client credentials spends nothing: that grant is retried, at the
    shipped defaults, where a refresh token grant is not."""
    api = FakeApi({"users": []})
    with FakeApiServer(api, require_oauth=True) as server:
        server.inject(replace(fault, path="/oauth/token"))
        params = Oauth2AuthParams(
            token_refresh_endpoint=f"{server.url}/oauth/token",
            client_id=server.client_id,
            client_secret=server.client_secret,
            grant_type="client_credentials",
        )
        session = build_session(auth=AuthBuilder.oauth2(params))
        assert session.get(f"{server.url}/count/users").json() == {"count": 0}
        assert [r.path for r in server.requests] == ["/oauth/token", "/oauth/token", "/count/users"]
        assert server.tokens_issued == 1 and server.pending_faults == []


def test_oauth_a_token_request_that_could_not_be_sent_is_retried(caplog) -> None:
    with socket.socket() as closed:  # nobody listens: the request never left this machine
        closed.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{closed.getsockname()[1]}/token"
        auth = AuthBuilder.oauth2(
            Oauth2AuthParams(
                token_refresh_endpoint=endpoint,
                client_id="c",
                client_secret=CLIENT_SECRET,
                refresh_token=REFRESH_TOKEN,
            )
        )
        session = build_session(auth=auth, settings=HttpConfig(max_retries=2, **FAST_BACKOFF))
        with pytest.raises(SourceError, match=r"/token failed: ConnectionError$"):
            session.get(f"{endpoint}/data")
    retries = [r.getMessage() for r in caplog.records if r.name == "bizon_core.source.session"]
    assert [m.split("; ")[1].split(" in ")[0] for m in retries] == ["retry 1 of 2", "retry 2 of 2"]
    assert all(m.startswith(f"POST {endpoint}: NewConnectionError") for m in retries)


def test_oauth_without_a_session_uses_plain_requests(scripted) -> None:
    scripted.add("/token", 200, {"access_token": "plain-1"}).add("/data", 200)
    auth = Oauth2Authenticator(oauth_params(scripted))
    assert requests.get(f"{scripted.url}/data", auth=auth, timeout=5).status_code == 200
    assert bearers(scripted) == ["Bearer plain-1"]


def test_oauth_threads_share_one_token_request(scripted) -> None:
    scripted.add("/token", 200, {"access_token": "shared-1", "expires_in": 3600}, delay=0.2)
    for _ in range(8):
        scripted.add("/data", 200)
    session = build_session(auth=AuthBuilder.oauth2(oauth_params(scripted)), settings=FAST)
    statuses: list[int] = []
    threads = [
        threading.Thread(
            target=lambda: statuses.append(session.get(f"{scripted.url}/data").status_code)
        )
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 8
    assert len(scripted.received("/token")) == 1
    assert bearers(scripted) == ["Bearer shared-1"] * 8


def test_oauth_params_need_a_refresh_token_for_its_grant() -> None:
    with pytest.raises(ValidationError, match="refresh_token is required when grant_type"):
        Oauth2AuthParams(token_refresh_endpoint="https://x/token", client_id="c", client_secret="s")
    params = Oauth2AuthParams(
        token_refresh_endpoint="https://x/token",
        client_id="c",
        client_secret="s",
        grant_type="client_credentials",
    )
    assert params.refresh_token is None and params.scopes == []
