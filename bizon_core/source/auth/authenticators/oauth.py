"""OAuth2 access tokens from a token endpoint (`refresh_token` or `client_credentials` grant)."""

from __future__ import annotations

import math
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Self

import requests
from pydantic import BaseModel, ConfigDict, model_validator
from requests.auth import AuthBase
from requests.cookies import extract_cookies_to_jar

from bizon_core.errors import SourceError
from bizon_core.secrets import Secret, redact, register_secret

if TYPE_CHECKING:
    from bizon_core.source.session import BizonSession

# Used when the authenticator is not bound to a bizon session, which has its own timeout.
TOKEN_REQUEST_TIMEOUT = 30.0


class Oauth2AuthParams(BaseModel):
    """Params of the `oauth` type."""

    model_config = ConfigDict(extra="forbid")

    token_refresh_endpoint: str
    client_id: str
    client_secret: Secret
    grant_type: Literal["refresh_token", "client_credentials"] = "refresh_token"
    refresh_token: Secret | None = None
    scopes: list[str] = []
    access_token: Secret | None = None
    token_expiry_date: datetime | None = None
    response_field_access_token: str = "access_token"
    response_field_expires_in: str = "expires_in"
    refresh_before_expiry_seconds: float = 60

    @model_validator(mode="after")
    def _refresh_token_for_its_grant(self) -> Self:
        if self.grant_type == "refresh_token" and not self.refresh_token:
            raise ValueError(
                "refresh_token is required when grant_type is refresh_token "
                "(or set grant_type: client_credentials)"
            )
        return self


class Oauth2Authenticator(AuthBase):
    """Sends `Authorization: Bearer <access token>`, fetching the token when needed.

    The token is fetched when missing or expiring within `refresh_before_expiry_seconds`,
    and once more when a request gets a 401, which is then sent again; a second 401 is
    returned as is (the session then raises `HttpError`). Safe to share between threads.
    Token requests go through the bizon session given to `bind_session` (its adapters and
    timeout; being POSTs, they are retried only when they could not be sent at all, never
    after the server may have processed them), else plain `requests`.
    """

    def __init__(self, params: Oauth2AuthParams, session: BizonSession | None = None):
        self.params = params
        self._session = session
        self._lock = threading.Lock()
        self._access_token = params.access_token or ""
        self._refresh_token = params.refresh_token
        self._expires_at = _aware(params.token_expiry_date)

    def bind_session(self, session: BizonSession) -> None:
        """Send token requests through `session` from now on."""
        self._session = session

    def get_access_token(self) -> str:
        """The current access token, fetched first if missing or about to expire."""
        with self._lock:
            if self._needs_refresh():
                self._refresh()
            return self._access_token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self.get_access_token()}"
        r.register_hook("response", self._handle_401)
        return r

    def _handle_401(self, r: requests.Response, **kwargs: Any) -> requests.Response:
        """Response hook: on a 401, refresh the token once and send the request again."""
        if r.status_code != 401:
            return r
        with self._lock:
            # Another thread may have refreshed since this request was sent: reuse its token.
            if r.request.headers.get("Authorization") == f"Bearer {self._access_token}":
                self._refresh()
            token = self._access_token
        _ = r.content  # read the body so that the connection goes back to the pool
        r.close()
        prep = r.request.copy()
        extract_cookies_to_jar(prep._cookies, r.request, r.raw)
        prep.prepare_cookies(prep._cookies)
        prep.headers["Authorization"] = f"Bearer {token}"
        # The adapter's send does not run hooks, so a second 401 comes back as is.
        retried = r.connection.send(prep, **kwargs)
        retried.history.append(r)
        retried.request = prep
        return retried

    def _needs_refresh(self) -> bool:
        if not self._access_token:
            return True
        if self._expires_at is None:
            return False
        margin = timedelta(seconds=self.params.refresh_before_expiry_seconds)
        return self._expires_at - datetime.now(UTC) <= margin

    def _refresh(self) -> None:
        """Fetch a new access token (the lock is held)."""
        params = self.params
        endpoint = params.token_refresh_endpoint
        form = {
            "grant_type": params.grant_type,
            "client_id": params.client_id,
            "client_secret": params.client_secret,
        }
        if params.grant_type == "refresh_token":
            form["refresh_token"] = self._refresh_token or ""
        if params.scopes:
            form["scope"] = " ".join(params.scopes)
        try:
            if self._session is None:
                response = requests.post(endpoint, data=form, timeout=TOKEN_REQUEST_TIMEOUT)
            else:
                # The session's own auth is this authenticator: the token request must not use
                # it. A refresh token may be single-use, so that grant is resent only when it
                # could not be sent (None); asking again for client credentials spends nothing.
                response = self._session.post(
                    endpoint,
                    data=form,
                    auth=_no_auth,
                    raise_for_status=False,
                    retry=True if params.grant_type == "client_credentials" else None,
                )
        except requests.RequestException as error:
            raise SourceError(
                redact(f"OAuth2 token request to {endpoint} failed: {type(error).__name__}")
            ) from error
        payload = _json_object(response)
        if not response.ok:
            reason = payload.get("error")
            detail = f" ({reason})" if isinstance(reason, str) else ""
            raise SourceError(
                redact(
                    f"OAuth2 token request to {endpoint} failed with HTTP "
                    f"{response.status_code}{detail}"
                )
            )
        token = payload.get(params.response_field_access_token)
        if not isinstance(token, str) or not token:
            raise SourceError(
                redact(
                    f"OAuth2 token endpoint {endpoint} returned no "
                    f"'{params.response_field_access_token}' (HTTP {response.status_code})"
                )
            )
        register_secret(token, "oauth.access_token")
        self._access_token = token
        self._expires_at = _expiry(payload.get(params.response_field_expires_in))
        rotated = payload.get("refresh_token")
        if isinstance(rotated, str) and rotated:
            register_secret(rotated, "oauth.refresh_token")
            self._refresh_token = rotated


def _no_auth(r: requests.PreparedRequest) -> requests.PreparedRequest:
    return r


def _json_object(response: requests.Response) -> dict[str, Any]:
    try:
        payload = response.json()
    except requests.exceptions.JSONDecodeError:
        return {}
    return payload if isinstance(payload, dict) else {}


def _expiry(expires_in: Any) -> datetime | None:
    """When a token given `expires_in` seconds from now expires; None if not told."""
    try:
        seconds = float(expires_in)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(seconds):
        return None
    return datetime.now(UTC) + timedelta(seconds=seconds)


def _aware(moment: datetime | None) -> datetime | None:
    """A naive expiry date is taken as UTC."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment
