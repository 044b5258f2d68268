"""Authentication settings of a source: a type and its parameters."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

from bizon_core.source.auth.authenticators.basic import BasicHttpAuthParams
from bizon_core.source.auth.authenticators.cookies import CookiesAuthParams
from bizon_core.source.auth.authenticators.oauth import Oauth2AuthParams
from bizon_core.source.auth.authenticators.token import TokenAuthParams


class AuthType(StrEnum):
    """The kinds of authentication a source config can name."""

    API_KEY = "api_key"
    BEARER = "bearer"
    BASIC = "basic"
    OAUTH = "oauth"
    COOKIES = "cookies"


AuthParams = TokenAuthParams | BasicHttpAuthParams | Oauth2AuthParams | CookiesAuthParams

_PARAMS_BY_TYPE: dict[AuthType, type[BaseModel]] = {
    AuthType.API_KEY: TokenAuthParams,
    AuthType.BEARER: TokenAuthParams,
    AuthType.BASIC: BasicHttpAuthParams,
    AuthType.OAUTH: Oauth2AuthParams,
    AuthType.COOKIES: CookiesAuthParams,
}


class AuthConfig(BaseModel):
    """`authentication:` in a source config, e.g. `{type: api_key, params: {token: ...}}`."""

    model_config = ConfigDict(extra="forbid")

    type: AuthType
    params: AuthParams

    @field_validator("params", mode="before")
    @classmethod
    def _params_for_type(cls, value: Any, info: ValidationInfo) -> Any:
        # Validate against the model of the declared type, so that an error names the
        # fields of that type rather than those of every member of the union.
        auth_type = info.data.get("type")
        if auth_type is None or isinstance(value, BaseModel):
            return value
        return _PARAMS_BY_TYPE[auth_type].model_validate(value)
