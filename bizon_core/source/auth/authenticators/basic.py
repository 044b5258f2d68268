"""HTTP basic authentication."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from requests.auth import HTTPBasicAuth

from bizon_core.secrets import Secret


class BasicHttpAuthParams(BaseModel):
    """Params of the `basic` type."""

    model_config = ConfigDict(extra="forbid")

    username: str
    password: Secret


class BasicHttpAuth(HTTPBasicAuth):
    """`requests`' `HTTPBasicAuth` built from params, with the password kept secret."""

    def __init__(self, params: BasicHttpAuthParams):
        super().__init__(params.username, params.password)
