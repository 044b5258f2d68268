"""HTTP basic authentication."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from requests.auth import HTTPBasicAuth

from bizon_core.secrets import register_secret


class BasicHttpAuthParams(BaseModel):
    """Params of the `basic` type."""

    model_config = ConfigDict(extra="forbid")

    username: str
    password: str


class BasicHttpAuth(HTTPBasicAuth):
    """`requests`' `HTTPBasicAuth` built from params, with the password kept secret."""

    def __init__(self, params: BasicHttpAuthParams):
        register_secret(params.password)
        super().__init__(params.username, params.password)
