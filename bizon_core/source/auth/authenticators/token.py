"""A static token in a header (`Authorization: Bearer <token>`, `X-API-Key: <key>`, ...) or
in a query parameter (`?api_key=<key>`)."""

from __future__ import annotations

import requests
from pydantic import BaseModel, ConfigDict, Field
from requests.auth import AuthBase

from bizon_core.secrets import Secret


class TokenAuthParams(BaseModel):
    """Params of the `api_key` and `bearer` types; an empty `auth_method` sends the bare token,
    and `query_param` sends it as that query parameter instead of a header."""

    model_config = ConfigDict(extra="forbid")

    token: Secret
    auth_method: str = "Bearer"
    auth_header: str = "Authorization"
    query_param: str | None = Field(
        default=None, description="Send the bare token as this query parameter, not a header."
    )


class TokenAuth(AuthBase):
    """Sets `auth_header: "<auth_method> <token>"`, or just the token without a method."""

    def __init__(self, params: TokenAuthParams):
        self.header = params.auth_header
        self.value = f"{params.auth_method} {params.token}" if params.auth_method else params.token
        self.query_param = params.query_param
        self.token = params.token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        if self.query_param:
            r.prepare_url(r.url, {self.query_param: self.token})
        else:
            r.headers[self.header] = self.value
        return r
