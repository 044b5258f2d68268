"""`build_session`: retries, waits, timeout and JSON, against a real local server."""

from __future__ import annotations

import json
import logging
import socket
import time
from decimal import Decimal
from email.utils import formatdate

import pytest
import requests

from bizon_core.errors import HttpError
from bizon_core.secrets import register_secret
from bizon_core.source.auth.authenticators.token import TokenAuth, TokenAuthParams
from bizon_core.source.config import HttpConfig
from bizon_core.source.session import BizonSession, JsonAdapter, build_session

FAST = {"backoff_factor": 0.01, "max_backoff": 0.05}


def session(**settings: float) -> BizonSession:
    return build_session(settings=HttpConfig(**{**FAST, **settings}))


def retry_logs(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "bizon_core.source.session" and r.levelno == logging.WARNING
    ]


def test_429_waits_retry_after_seconds(scripted, caplog) -> None:
    scripted.add("/x", 429, headers={"Retry-After": "1"}).add("/x", 200, {"ok": True})
    started = time.monotonic()
    response = session().get(f"{scripted.url}/x")
    assert response.status_code == 200 and response.json() == {"ok": True}
    assert time.monotonic() - started >= 1
    assert len(scripted.requests) == 2
    assert retry_logs(caplog) == [f"GET {scripted.url}/x: HTTP 429; retry 1 of 5 in 1.00s"]


def test_429_waits_retry_after_http_date(scripted, caplog) -> None:
    retry_at = formatdate(time.time() + 2, usegmt=True)  # whole seconds: a wait of 1 to 2 s
    scripted.add("/x", 429, headers={"Retry-After": retry_at}).add("/x", 200)
    started = time.monotonic()
    assert session().get(f"{scripted.url}/x").status_code == 200
    assert 0.9 <= time.monotonic() - started < 2.5
    assert len(scripted.requests) == 2
    [message] = retry_logs(caplog)
    assert message.startswith(f"GET {scripted.url}/x: HTTP 429; retry 1 of 5 in 1.")


def test_a_403_with_retry_after_is_a_rate_limit_and_waited(scripted, caplog) -> None:
    # GitHub's secondary rate limit, at the shipped defaults.
    scripted.add("/x", 403, {"message": "secondary rate limit"}, headers={"Retry-After": "1"})
    scripted.add("/x", 200, {"ok": True})
    started = time.monotonic()
    assert build_session().get(f"{scripted.url}/x").json() == {"ok": True}
    assert time.monotonic() - started >= 1
    assert retry_logs(caplog) == [f"GET {scripted.url}/x: HTTP 403; retry 1 of 5 in 1.00s"]


@pytest.mark.parametrize("status", [403, 429])
def test_an_exhausted_quota_waits_until_x_ratelimit_reset(scripted, caplog, status) -> None:
    reset = int(time.time()) + 2  # epoch seconds, as GitHub sends: a wait of 1 to 2 s
    limit = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)}
    scripted.add("/x", status, {"message": "API rate limit exceeded"}, headers=limit)
    scripted.add("/x", 200, {"ok": True})
    started = time.monotonic()
    assert build_session().get(f"{scripted.url}/x").json() == {"ok": True}
    assert time.monotonic() - started >= 0.9
    [message] = retry_logs(caplog)
    assert message.startswith(f"GET {scripted.url}/x: HTTP {status}; retry 1 of 5 in 1.")


def test_a_403_that_is_no_rate_limit_is_raised_at_once(scripted) -> None:
    headers = {"X-RateLimit-Remaining": "4999", "Content-Type": "application/json"}
    scripted.add("/x", 403, {"message": "Resource not accessible"}, headers=headers)
    with pytest.raises(HttpError, match=r"HTTP 403.*Resource not accessible"):
        build_session().get(f"{scripted.url}/x")
    assert len(scripted.requests) == 1


def test_a_rate_limit_reset_beyond_max_retry_wait_is_raised_at_once(scripted, caplog) -> None:
    reset = str(int(time.time()) + 3600)
    limit = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}
    limit["Content-Type"] = "application/json"
    scripted.add("/x", 403, {"message": "API rate limit exceeded"}, headers=limit)
    with pytest.raises(HttpError, match=r"HTTP 403.*API rate limit exceeded"):
        build_session().get(f"{scripted.url}/x")
    assert len(scripted.requests) == 1
    [message] = retry_logs(caplog)
    assert "not retried" in message and "max_retry_wait (120s)" in message


def test_a_post_is_not_resent_after_a_rate_limit_403_by_default(scripted) -> None:
    scripted.add("/x", 403, headers={"Retry-After": "0"}).add("/x", 200)
    with pytest.raises(HttpError):
        build_session().post(f"{scripted.url}/x", json={})
    assert len(scripted.requests) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried(scripted, status: int) -> None:
    scripted.add("/x", status).add("/x", status).add("/x", 200, {"n": 1})
    assert session().get(f"{scripted.url}/x").json() == {"n": 1}
    assert len(scripted.requests) == 3


def test_other_statuses_are_not_retried(scripted) -> None:
    scripted.add("/x", 404).add("/x", 200)
    with pytest.raises(HttpError) as raised:
        session().get(f"{scripted.url}/x")
    assert raised.value.status == 404
    assert len(scripted.requests) == 1


def test_a_reset_connection_is_retried(scripted, caplog) -> None:
    scripted.add("/x", drop=True).add("/x", 200, {"n": 1})
    assert session().get(f"{scripted.url}/x").json() == {"n": 1}
    assert len(scripted.requests) == 2
    [message] = retry_logs(caplog)
    assert message.startswith(
        f"GET {scripted.url}/x: ProtocolError (ConnectionResetError); retry 1 of 5 in "
    )


def test_a_truncated_body_is_retried(scripted) -> None:
    scripted.add("/x", 200, {"n": 0}, truncate=True).add("/x", 200, {"n": 1})
    assert session().get(f"{scripted.url}/x").json() == {"n": 1}
    assert len(scripted.requests) == 2


def test_exhausted_retries_raise_with_the_last_response(scripted) -> None:
    for body in ("a", "b", "c"):
        scripted.add("/x", 503, body, headers={"Content-Type": "text/plain"})
    scripted.add("/x", 200)
    with pytest.raises(HttpError) as raised:
        session(max_retries=2).get(f"{scripted.url}/x")
    assert str(raised.value) == (
        f"GET {scripted.url}/x: HTTP 503 Service Unavailable after 2 retries: c"
    )
    assert (raised.value.response.status_code, raised.value.response.text) == (503, "c")
    assert len(scripted.requests) == 3


def test_exhausted_retries_return_the_last_response_when_asked(scripted) -> None:
    scripted.add("/x", 503, "a").add("/x", 503, "b").add("/x", 200)
    response = session(max_retries=1).get(f"{scripted.url}/x", raise_for_status=False)
    assert (response.status_code, response.text) == (503, "b")
    assert len(scripted.requests) == 2


def test_exhausted_retries_raise_the_last_connection_error(scripted) -> None:
    scripted.add("/x", drop=True).add("/x", drop=True).add("/x", 200)
    with pytest.raises(requests.ConnectionError):
        session(max_retries=1).get(f"{scripted.url}/x")
    assert len(scripted.requests) == 2


def test_a_wait_beyond_the_total_bound_is_not_waited(scripted, caplog) -> None:
    scripted.add("/x", 429, headers={"Retry-After": "3600"}).add("/x", 200)
    started = time.monotonic()
    with pytest.raises(HttpError, match=r"HTTP 429 Too Many Requests$"):
        build_session().get(f"{scripted.url}/x")  # max_retry_wait: 120 s by default
    assert time.monotonic() - started < 1
    assert len(scripted.requests) == 1
    assert retry_logs(caplog) == [
        f"GET {scripted.url}/x: HTTP 429; not retried: waiting 3600.00s would exceed "
        "max_retry_wait (120s)"
    ]


def test_the_total_wait_bounds_the_retries(scripted) -> None:
    for _ in range(4):
        scripted.add("/x", 503, headers={"Retry-After": "0.3"})
    scripted.add("/x", 200)
    started = time.monotonic()
    response = session(max_retry_wait=0.7).get(f"{scripted.url}/x", raise_for_status=False)
    assert response.status_code == 503
    assert len(scripted.requests) == 3  # two waits of 0.3 s fit in 0.7 s, a third does not
    assert 0.6 <= time.monotonic() - started < 1.5


def test_backoff_is_capped_by_max_backoff(scripted) -> None:
    for _ in range(6):
        scripted.add("/x", 502)
    scripted.add("/x", 200)
    started = time.monotonic()
    s = session(backoff_factor=10, max_backoff=0.05, max_retries=6)
    assert s.get(f"{scripted.url}/x").status_code == 200
    assert time.monotonic() - started < 0.3 + 0.5  # six waits of at most 0.05 s


def test_the_log_has_no_query_credentials_or_headers(scripted, caplog) -> None:
    scripted.add("/x", 503).add("/x", 200)
    auth = TokenAuth(TokenAuthParams(token="header-secret-1234"))
    s = build_session(auth=auth, settings=HttpConfig(**FAST))
    url = scripted.url.replace("http://", "http://user:pw-secret@") + "/x?key=q-secret"
    assert s.get(url, params={"token": "p-secret"}).status_code == 200
    [message] = retry_logs(caplog)
    assert message.startswith(f"GET {scripted.url}/x: HTTP 503; retry 1 of 5 in ")
    assert "secret" not in message
    assert [r.query for r in scripted.requests] == [{"key": "q-secret", "token": "p-secret"}] * 2
    assert scripted.requests[1].headers["Authorization"] == "Bearer header-secret-1234"


def test_the_default_timeout_applies_and_an_explicit_one_wins(scripted) -> None:
    scripted.add("/slow", 200, delay=0.5).add("/slow", 200, delay=0.5)
    scripted.add("/slow", 200, {"late": True}, delay=0.5)
    s = session(timeout=0.2, max_retries=1)
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        s.get(f"{scripted.url}/slow")
    assert time.monotonic() - started < 0.2 * 2 + 0.05 + 0.25  # two timeouts, one backoff
    assert len(scripted.requests) == 2
    assert s.get(f"{scripted.url}/slow", timeout=3).json() == {"late": True}


def test_a_read_timeout_is_retried(scripted, caplog) -> None:
    scripted.add("/slow", 200, delay=0.5).add("/slow", 200, {"n": 1})
    assert session(timeout=0.2).get(f"{scripted.url}/slow").json() == {"n": 1}
    assert len(scripted.requests) == 2
    [message] = retry_logs(caplog)
    assert message.startswith(f"GET {scripted.url}/slow: ReadTimeoutError")


def test_http_and_https_get_the_same_adapter() -> None:
    s = build_session()
    assert isinstance(s.get_adapter("http://example.com/"), JsonAdapter)
    assert isinstance(s.get_adapter("https://example.com/"), JsonAdapter)
    assert s.settings == HttpConfig()


def test_json_is_parsed_with_orjson(scripted) -> None:
    payload = {"items": [{"id": 1, "name": "é", "ratio": 0.5}], "next": None}
    scripted.add("/x", 200, payload).add("/x", 200, b'{"price": 1.10}')
    s = session()
    response = s.get(f"{scripted.url}/x")
    assert type(response).json is not requests.Response.json
    assert response.json() == payload
    # Keyword arguments still go to the standard json module.
    assert s.get(f"{scripted.url}/x").json(parse_float=Decimal) == {"price": Decimal("1.10")}


def test_json_in_another_charset_is_decoded_as_requests_does(scripted) -> None:
    headers = {"Content-Type": "application/json; charset=iso-8859-1"}
    scripted.add("/x", 200, '{"name": "é"}'.encode("latin-1"), headers=headers)
    assert session().get(f"{scripted.url}/x").json() == {"name": "é"}


@pytest.mark.parametrize("body", [b"<html>oops</html>", b""])
def test_a_body_that_is_not_json_raises_the_requests_error(scripted, body: bytes) -> None:
    scripted.add("/x", 200, body)
    response = session().get(f"{scripted.url}/x")
    with pytest.raises(requests.exceptions.JSONDecodeError) as raised:
        response.json()
    assert isinstance(raised.value, json.JSONDecodeError)


def test_a_post_is_sent_once_on_a_503_by_default(scripted, caplog) -> None:
    scripted.add("/search", 503).add("/search", 200, {"n": 1})
    with pytest.raises(HttpError) as raised:
        build_session().post(f"{scripted.url}/search", json={"q": "x"})
    assert raised.value.status == 503
    assert len(scripted.received("/search")) == 1
    assert not retry_logs(caplog)


def test_a_post_is_retried_when_the_caller_opts_in(scripted, caplog) -> None:
    scripted.add("/search", 503).add("/search", drop=True).add("/search", 200, {"n": 1})
    response = build_session().post(f"{scripted.url}/search", json={"q": "x"}, retry=True)
    assert response.json() == {"n": 1}
    assert [r.body for r in scripted.received("/search")] == [b'{"q": "x"}'] * 3
    steps = [m.split("; ")[1].split(" in ")[0] for m in retry_logs(caplog)]
    assert steps == ["retry 1 of 5", "retry 2 of 5"]


def test_a_post_is_not_resent_after_a_reset_by_default(scripted) -> None:
    scripted.add("/search", drop=True).add("/search", 200)
    with pytest.raises(requests.ConnectionError):
        build_session().post(f"{scripted.url}/search", data={"a": "1"})
    assert len(scripted.received("/search")) == 1


def test_a_post_that_could_not_be_sent_is_retried(caplog) -> None:
    with socket.socket() as closed:  # a port nobody listens on: the connection is refused
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/search"
        with pytest.raises(requests.ConnectionError):
            session(max_retries=2).post(url, data={"a": "1"})
    assert [m.split(": ", 1)[1].split(";")[0] for m in retry_logs(caplog)] == [
        "NewConnectionError (ConnectionRefusedError)"
    ] * 2


def test_retry_false_never_retries(scripted) -> None:
    scripted.add("/x", 503).add("/x", 200)
    response = build_session().get(f"{scripted.url}/x", retry=False, raise_for_status=False)
    assert response.status_code == 503
    assert len(scripted.requests) == 1


def test_a_token_in_the_url_path_is_masked_in_the_retry_log(scripted, caplog) -> None:
    register_secret("path-secret-5678")
    scripted.add("/v1/path-secret-5678/x", 503).add("/v1/path-secret-5678/x", 200)
    assert session().get(f"{scripted.url}/v1/path-secret-5678/x").status_code == 200
    [message] = retry_logs(caplog)
    assert message.startswith(f"GET {scripted.url}/v1/***/x: HTTP 503; retry 1 of 5 in ")


def test_urllib3_logs_no_query_or_secret_even_at_debug(scripted, caplog) -> None:
    register_secret("path-secret-9012")
    caplog.set_level(logging.DEBUG, logger="urllib3")
    path = "/v1/path-secret-9012/x"
    scripted.add(path, drop=True).add(path, 503).add(path, 200)
    response = session().get(f"{scripted.url}{path}?key=q-secret", params={"t": "p-secret"})
    assert response.status_code == 200
    urllib3_lines = [r.getMessage() for r in caplog.records if r.name.startswith("urllib3")]
    assert any("/v1/***/x" in line for line in urllib3_lines)  # it did log the requests
    assert not [line for line in urllib3_lines if "secret" in line or "Retrying" in line]
    assert len(retry_logs(caplog)) == 2  # the session's own lines stand for urllib3's
