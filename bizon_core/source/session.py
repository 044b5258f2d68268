"""The HTTP session of sources: authentication, a default timeout, retries and fast JSON."""

from __future__ import annotations

import logging
import math
import random
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from requests.utils import to_native_string

from bizon_core.source.auth.authenticators.oauth import Oauth2Authenticator
from bizon_core.source.config import HttpConfig

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRY_ERRORS = (requests.ConnectionError, requests.exceptions.ChunkedEncodingError)
# Beyond this the backoff is capped by max_backoff anyway; it keeps 2**attempt a small number.
_MAX_BACKOFF_EXPONENT = 32


class JsonResponse(requests.Response):
    """A `requests.Response` whose `json()` parses with orjson."""

    def json(self, **kwargs: Any) -> Any:
        """The decoded body; keyword arguments go to the standard `json` module, as usual."""
        if not kwargs:
            try:
                return orjson.loads(self.content)
            except orjson.JSONDecodeError:
                # Not UTF-8 JSON: requests decodes another declared charset or raises its
                # own JSONDecodeError, exactly as callers expect.
                pass
        return super().json(**kwargs)


class JsonAdapter(HTTPAdapter):
    """An `HTTPAdapter` that builds `JsonResponse`s."""

    def build_response(self, req: requests.PreparedRequest, resp: Any) -> requests.Response:
        response = super().build_response(req, resp)
        # JsonResponse only overrides a method, so switching the class keeps the state intact.
        response.__class__ = JsonResponse
        return response


class BizonSession(requests.Session):
    """A `requests.Session` with a default timeout and retries bounded in total wait.

    429, 500, 502, 503, 504 and connection errors are retried up to `max_retries` times,
    after `Retry-After` when the server sends one, else after an exponential backoff with
    full jitter. Retrying stops early rather than let the waits of one request add up to
    more than `max_retry_wait`: the last response is returned, or the last error raised.
    """

    def __init__(self, settings: HttpConfig | None = None):
        super().__init__()
        self.settings = settings or HttpConfig()
        self._environment: dict[tuple, dict[str, Any]] = {}
        self.mount("https://", JsonAdapter())
        self.mount("http://", JsonAdapter())

    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        """Send a request, retrying it as the settings allow."""
        settings = self.settings
        waited = 0.0
        attempt = 0
        while True:
            error: Exception | None = None
            response: requests.Response | None = None
            try:
                response = super().request(method, url, *args, **kwargs)
            except requests.exceptions.SSLError:
                raise  # a certificate problem does not go away by retrying
            except RETRY_ERRORS as exc:
                error = exc
            else:
                if response.status_code not in RETRY_STATUSES:
                    return response
            wait = self._wait(attempt, response)
            if attempt >= settings.max_retries or waited + wait > settings.max_retry_wait:
                if error is not None:
                    raise error
                return response
            attempt += 1
            logger.warning(
                "%s %s: %s; retry %d of %d in %.2fs",
                to_native_string(method).upper(),
                _public_url(to_native_string(url)),
                f"HTTP {response.status_code}" if response is not None else _describe(error),
                attempt,
                settings.max_retries,
                wait,
            )
            if response is not None:
                response.close()
            time.sleep(wait)
            waited += wait

    def merge_environment_settings(
        self, url: str | None, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        """As in requests, but the environment (proxies, CA bundle) is read once per host.

        It does not change during a sync, and reading it for every request costs more
        than parsing a page of records.
        """
        parts = urlsplit(url or "")
        key = (parts.scheme, parts.netloc, _hashable(proxies), stream, _hashable(verify), cert)
        settings = self._environment.get(key)
        if settings is None:
            settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
            self._environment[key] = settings
        return dict(settings)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """Send a prepared request, with the default timeout when none is given."""
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.settings.timeout
        return super().send(request, **kwargs)

    def _wait(self, attempt: int, response: requests.Response | None) -> float:
        """Seconds to wait before retry `attempt + 1`."""
        if response is not None:
            retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
            if retry_after is not None:
                return retry_after
        exponent = min(attempt, _MAX_BACKOFF_EXPONENT)
        ceiling = min(self.settings.max_backoff, self.settings.backoff_factor * 2**exponent)
        return random.uniform(0, ceiling)


def build_session(auth: AuthBase | None = None, settings: HttpConfig | None = None) -> BizonSession:
    """A session with `auth`, the timeout and retries of `settings`, and orjson `json()`.

    An OAuth2 authenticator is bound to the session, so that its token requests use the
    session's adapters, timeout and retries.
    """
    session = BizonSession(settings)
    session.auth = auth
    if isinstance(auth, Oauth2Authenticator):
        auth.bind_session(session)
    return session


def _retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` as seconds from now (given as seconds or an HTTP date); None if unusable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return max(0.0, (moment - datetime.now(UTC)).total_seconds())
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _hashable(value: Any) -> Any:
    return tuple(sorted(value.items())) if isinstance(value, dict) else value


def _public_url(url: str) -> str:
    """`url` without credentials, query string or fragment, fit for a log line."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def _describe(error: BaseException | None) -> str:
    """The type of an error and of its root cause; messages are left out as they hold URLs."""
    root = error
    while root is not None and (root.__cause__ or root.__context__) is not None:
        root = root.__cause__ or root.__context__
    name = type(error).__name__
    return name if root is error else f"{name} ({type(root).__name__})"
