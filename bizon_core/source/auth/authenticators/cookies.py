"""Authentication by cookies sent with every request."""

from __future__ import annotations

import requests
from pydantic import BaseModel, ConfigDict
from requests.auth import AuthBase

from bizon_core.secrets import Secret


class CookiesAuthParams(BaseModel):
    """Params of the `cookies` type: cookie names and values."""

    model_config = ConfigDict(extra="forbid")

    cookies: dict[str, Secret]


class CookiesAuth(AuthBase):
    """Adds the configured cookies to the request's `Cookie` header, replacing same-name ones."""

    def __init__(self, params: CookiesAuthParams):
        self.cookies = dict(params.cookies)

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        existing = r.headers.get("Cookie", "")
        kept = [
            pair
            for pair in (p.strip() for p in existing.split(";"))
            if pair and pair.partition("=")[0].strip() not in self.cookies
        ]
        ours = [f"{name}={value}" for name, value in self.cookies.items()]
        r.headers["Cookie"] = "; ".join(kept + ours)
        return r
