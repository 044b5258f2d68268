"""The HTTP session of sources: authentication, a default timeout, retries and fast JSON."""

from __future__ import annotations

import logging
import math
import random
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit

import orjson
import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from requests.utils import to_native_string
from urllib3.exceptions import MaxRetryError, ProtocolError, ReadTimeoutError, ResponseError
from urllib3.util.retry import Retry

from bizon_core.errors import HttpError
from bizon_core.secrets import redact
from bizon_core.source.auth.authenticators.oauth import Oauth2Authenticator
from bizon_core.source.config import HttpConfig

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Methods retried after the server may have received the request, unless the caller decides.
IDEMPOTENT_METHODS = Retry.DEFAULT_ALLOWED_METHODS
# Beyond this the backoff is capped by max_backoff anyway; it keeps 2**n a small number.
_MAX_BACKOFF_EXPONENT = 32
_EXCERPT_LENGTH = 200
_TEXT_TYPES = re.compile(r"^(application/([\w.+-]*\+)?json|text/plain)\b", re.IGNORECASE)
_DEFAULT_PORTS = {"http": 80, "https": 443}
# A rate-limit reset above this is an epoch time (2001-09-09), below it seconds from now.
_EPOCH_FROM = 1_000_000_000

# The retries of the request being sent in this thread: set by `BizonSession`, read by
# `JsonAdapter` (requests gives an adapter no per-request retries of its own).
_retries: ContextVar[Retry | None] = ContextVar("bizon_retries", default=None)


class SessionRetry(Retry):
    """urllib3's `Retry`, bounded in total wait, with one log line per retry.

    The wait before retry n is `Retry-After` when the answer has one, else a random
    wait between 0 and `backoff_factor * 2**(n-1)`, capped by `backoff_max` ("full
    jitter"). A retry whose wait would bring the waits of the request above `max_wait`
    is not made: the last answer is returned, or the error raised, at once.
    """

    RETRY_AFTER_STATUS_CODES = RETRY_STATUSES

    def __init__(
        self,
        *args: Any,
        max_wait: float = math.inf,
        waited: float = 0.0,
        wait: float = 0.0,
        label: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.max_wait = max_wait
        self.waited = waited  # seconds waited so far, before this attempt
        self.wait = wait  # seconds to wait before this attempt, decided by increment()
        self.label = label  # "METHOD url" for the log line, without query or credentials

    @classmethod
    def for_request(cls, settings: HttpConfig, retry: bool | None = None) -> Self:
        """The retries of one request: see `BizonSession.request` for `retry`."""
        return cls(
            total=0 if retry is False else settings.max_retries,
            other=0,  # e.g. a certificate problem: it does not go away by retrying
            allowed_methods=None if retry else IDEMPOTENT_METHODS,
            status_forcelist=RETRY_STATUSES,
            backoff_factor=settings.backoff_factor,
            backoff_max=settings.max_backoff,
            raise_on_status=False,
            respect_retry_after_header=True,
            max_wait=settings.max_retry_wait,
        )

    def new(self, **kw: Any) -> Self:
        kw.setdefault("max_wait", self.max_wait)
        kw.setdefault("waited", self.waited)
        kw.setdefault("label", self.label)
        return super().new(**kw)

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> Self:
        """The retries after this attempt; raises when there is to be no retry.

        Out of retries, a read error (reset, timeout) is raised as itself, as urllib3 does
        for a method it does not retry, so that requests raises `ReadTimeout` or
        `ConnectionError` as without retries; a connect error as `MaxRetryError`.
        """
        try:
            new = super().increment(method, url, response, error, _pool, _stacktrace)
        except MaxRetryError:
            if error is not None and self._is_read_error(error):
                raise error.with_traceback(_stacktrace) from None
            raise
        wait = new._next_wait(response)
        label = redact(self.label or f"{method} {_public_url(_absolute(url, _pool))}")
        what = f"HTTP {response.status}" if response is not None else _describe(error)
        if self.waited + wait > self.max_wait:
            logger.warning(
                "%s: %s; not retried: waiting %.2fs would exceed max_retry_wait (%gs)",
                label,
                what,
                wait,
                self.max_wait,
            )
            if error is not None and self._is_read_error(error):
                raise error.with_traceback(_stacktrace)
            raise MaxRetryError(_pool, url, error or ResponseError(what))
        attempt = len(new.history)
        # `total` counts down from max_retries: attempts made plus attempts left.
        logger.warning(
            "%s: %s; retry %d of %d in %.2fs", label, what, attempt, attempt + new.total, wait
        )
        new.wait, new.waited = wait, self.waited + wait
        return new

    def sleep(self, response: Any = None) -> None:
        """Wait as `increment` decided."""
        if self.wait > 0:
            time.sleep(self.wait)

    def get_backoff_time(self) -> float:
        """A random wait up to `backoff_factor * 2**(n-1)` before retry n, capped."""
        n = len(self.history)
        if n == 0:
            return 0.0
        exponent = min(n - 1, _MAX_BACKOFF_EXPONENT)
        return random.uniform(0, min(self.backoff_max, self.backoff_factor * 2**exponent))

    def allows(self, method: str) -> bool:
        """Whether `method` may be retried."""
        return self.allowed_methods is None or method.upper() in self.allowed_methods

    def _next_wait(self, response: Any) -> float:
        if response is not None and self.respect_retry_after_header:
            wait = server_wait(response.headers)
            if wait is not None:
                return wait
        return self.get_backoff_time()


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
    """An `HTTPAdapter` that builds `JsonResponse`s and sends with the session's retries."""

    @property
    def max_retries(self) -> Retry:
        """The retries of the request being sent by a `BizonSession`, else the adapter's."""
        return _retries.get() or self._max_retries

    @max_retries.setter
    def max_retries(self, value: Retry) -> None:
        self._max_retries = value

    def build_response(self, req: requests.PreparedRequest, resp: Any) -> requests.Response:
        response = super().build_response(req, resp)
        # JsonResponse only overrides a method, so switching the class keeps the state intact.
        response.__class__ = JsonResponse
        return response


class BizonSession(requests.Session):
    """A `requests.Session` with a default timeout, retries and HTTP errors raised.

    429, 500, 502, 503, 504, a 403 that says it is a rate limit (see `server_wait`: GitHub
    answers its rate limits so), connection errors, read timeouts and bodies cut short are
    retried up to `max_retries` times for idempotent methods (GET, HEAD, PUT, DELETE,
    OPTIONS, TRACE); other methods (POST, PATCH) only when the request could not be
    sent at all, unless the caller passes `retry=True`. See `SessionRetry` for the waits.
    An answer of status 400 or more, once retries are spent, raises `HttpError` unless
    the caller passes `raise_for_status=False`.
    """

    def __init__(self, settings: HttpConfig | None = None):
        super().__init__()
        self.settings = settings or HttpConfig()
        self._environment: dict[tuple, dict[str, Any]] = {}
        self.mount("https://", JsonAdapter())
        self.mount("http://", JsonAdapter())

    def request(
        self,
        method: str | bytes,
        url: str | bytes,
        *args: Any,
        retry: bool | None = None,
        raise_for_status: bool = True,
        **kwargs: Any,
    ) -> requests.Response:
        """Send a request as `requests.Session.request` does, retrying as the settings allow.

        `retry`: None (the default) retries idempotent methods; True retries any method,
        for a POST the API allows to repeat (a search); False never retries.
        `raise_for_status=False` returns an error answer (404, ...) instead of raising
        `HttpError`.
        """
        with _retrying(SessionRetry.for_request(self.settings, retry)):
            response = super().request(method, url, *args, **kwargs)
        if raise_for_status and response.status_code >= 400:
            raise _http_error(response)
        return response

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """Send a prepared request, with the default timeout when none is given.

        Unless `stream=True`, a body cut short (or a read timeout while reading it) is
        retried as the retries of the request allow.
        """
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.settings.timeout
        stream = kwargs.pop("stream", False)
        method = to_native_string(request.method or "GET").upper()
        retries = (_retries.get() or SessionRetry.for_request(self.settings)).new(
            label=f"{method} {_public_url(request.url or '')}"
        )
        while True:
            with _retrying(retries):
                response = super().send(request, stream=True, **kwargs)
            after_limit = _after_rate_limit(response, method)
            if after_limit is not None:
                retries = after_limit
                retries.sleep()
                continue
            if stream:
                return response
            try:
                _ = response.content
                return response
            except (requests.exceptions.ChunkedEncodingError, requests.ConnectionError) as exc:
                retries = _after_broken_body(response, exc)
                retries.sleep()

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


class Urllib3LogFilter(logging.Filter):
    """Keeps urllib3's own log lines free of query strings, credentials and secrets.

    urllib3 logs the URL of each request and retry (DEBUG) and of a broken connection
    (WARNING): each URL is cut to scheme, host and path, and redacted. Its warning of a
    retry by `SessionRetry` is dropped: the session logs its own line for it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and args:
            if isinstance(args[0], SessionRetry):
                return False
            record.args = tuple(_clean_log_arg(a) if isinstance(a, str) else a for a in args)
        return True


URLLIB3_LOGGERS = (
    "urllib3.connection",
    "urllib3.connectionpool",
    "urllib3.poolmanager",
    "urllib3.response",
    "urllib3.util.retry",
)
_URLLIB3_FILTER = Urllib3LogFilter()
for _name in URLLIB3_LOGGERS:
    logging.getLogger(_name).addFilter(_URLLIB3_FILTER)


def build_session(auth: AuthBase | None = None, settings: HttpConfig | None = None) -> BizonSession:
    """A session with `auth`, the timeout and retries of `settings`, and orjson `json()`.

    An OAuth2 authenticator is bound to the session, so that its token requests use the
    session's adapters and timeout.
    """
    session = BizonSession(settings)
    session.auth = auth
    if isinstance(auth, Oauth2Authenticator):
        auth.bind_session(session)
    return session


@contextmanager
def _retrying(retries: Retry) -> Iterator[None]:
    token = _retries.set(retries)
    try:
        yield
    finally:
        _retries.reset(token)


def _after_broken_body(response: requests.Response, exc: requests.RequestException) -> Retry:
    """The retries after a body that could not be read; raises `exc` when there is none."""
    cause = exc.args[0] if exc.args else None
    retries = getattr(response.raw, "retries", None)
    if not isinstance(cause, ProtocolError | ReadTimeoutError) or not isinstance(
        retries, SessionRetry
    ):
        raise exc
    request = response.request
    try:
        return retries.increment(request.method, request.path_url, error=cause)
    except (MaxRetryError, ProtocolError, ReadTimeoutError):
        raise exc from cause


def _after_rate_limit(response: requests.Response, method: str) -> SessionRetry | None:
    """The retries after a 403 that tells when to retry; None if it is not one, or when
    there is to be no retry (the answer is then returned, and raised as `HttpError`)."""
    if response.status_code != 403 or server_wait(response.headers) is None:
        return None
    retries = getattr(response.raw, "retries", None)
    if not isinstance(retries, SessionRetry) or not retries.allows(method):
        return None
    try:
        after = retries.increment(method, response.request.path_url, response=response.raw)
    except MaxRetryError:
        return None
    response.close()
    return after


def _http_error(response: requests.Response) -> HttpError:
    """The `HttpError` of an answer of status 400 or more."""
    request = response.request
    method = to_native_string(request.method or "GET").upper()
    url = redact(_public_url(response.url or request.url or ""))
    retries = getattr(response.raw, "retries", None)
    retried = len(retries.history) if isinstance(retries, SessionRetry) else 0
    message = f"{method} {url}: HTTP {response.status_code}"
    if response.reason:
        message += f" {response.reason}"
    if retried:
        message += f" after {retried} retr{'y' if retried == 1 else 'ies'}"
    excerpt = _excerpt(response)
    return HttpError(
        f"{message}: {excerpt}" if excerpt else message,
        status=response.status_code,
        method=method,
        url=url,
        response=response,
        summary=message,
    )


def _excerpt(response: requests.Response) -> str:
    """The start of a JSON or plain-text body, on one line and redacted; else ''."""
    if not _TEXT_TYPES.match(response.headers.get("Content-Type", "")):
        return ""
    text = " ".join(response.text.split())
    if len(text) > _EXCERPT_LENGTH:
        text = text[:_EXCERPT_LENGTH] + "…"
    return redact(text)


def server_wait(headers: Any) -> float | None:
    """Seconds the server asks to wait before the next request, or None if it does not.

    `Retry-After` (seconds or an HTTP date), else, when `X-RateLimit-Remaining` is 0,
    until `X-RateLimit-Reset` (epoch seconds as GitHub sends it, or seconds from now).
    """
    retry_after = _retry_after_seconds(headers.get("Retry-After"))
    if retry_after is not None:
        return retry_after
    if headers.get("X-RateLimit-Remaining", "").strip() != "0":
        return None
    try:
        reset = float(headers.get("X-RateLimit-Reset", ""))
    except ValueError:
        return None
    if not math.isfinite(reset) or reset < 0:
        return None
    return max(0.0, reset - time.time()) if reset > _EPOCH_FROM else reset


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


def _clean_log_arg(text: str) -> str:
    if text.startswith("/") or "://" in text:
        text = _public_url(text)
    return redact(text)


def _absolute(url: str | None, pool: Any) -> str:
    """The URL urllib3 sends (a path, for a pool of one host) with the pool's host."""
    if url and url.startswith("/") and pool is not None:
        port = "" if pool.port in (None, _DEFAULT_PORTS.get(pool.scheme)) else f":{pool.port}"
        return f"{pool.scheme}://{pool.host}{port}{url}"
    return url or ""


def _describe(error: BaseException | None) -> str:
    """The type of an error and of its root cause; messages are left out as they hold URLs."""
    root = error
    while root is not None:
        inner = root.__cause__ or root.__context__
        if inner is None:  # urllib3 wraps without chaining: ProtocolError(message, cause)
            inner = next((a for a in root.args if isinstance(a, BaseException)), None)
        if inner is None:
            break
        root = inner
    name = type(error).__name__
    return name if root is error else f"{name} ({type(root).__name__})"
