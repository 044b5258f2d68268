"""`AuthBuilder`: `requests` authenticators from auth params or an `authentication:` config."""

from __future__ import annotations

from requests.auth import AuthBase

from bizon_core.errors import ConfigError
from bizon_core.source.auth.authenticators.basic import BasicHttpAuth, BasicHttpAuthParams
from bizon_core.source.auth.authenticators.cookies import CookiesAuth, CookiesAuthParams
from bizon_core.source.auth.authenticators.oauth import Oauth2Authenticator, Oauth2AuthParams
from bizon_core.source.auth.authenticators.token import TokenAuth, TokenAuthParams
from bizon_core.source.auth.config import AuthConfig, AuthType


class AuthBuilder:
    """Builds the authenticator a source returns from `get_authenticator()`.

    Example, in a source::

        def get_authenticator(self) -> AuthBase | None:
            token = self.config.authentication.params.token
            return AuthBuilder.token(params=TokenAuthParams(token=token))
    """

    @staticmethod
    def token(params: TokenAuthParams) -> AuthBase:
        """A static token in a header (`api_key`, `bearer`)."""
        return TokenAuth(params)

    @staticmethod
    def basic(params: BasicHttpAuthParams) -> AuthBase:
        """HTTP basic authentication."""
        return BasicHttpAuth(params)

    @staticmethod
    def oauth2(params: Oauth2AuthParams) -> AuthBase:
        """OAuth2 bearer tokens from a token endpoint, refreshed as needed."""
        return Oauth2Authenticator(params)

    @staticmethod
    def cookies(params: CookiesAuthParams) -> AuthBase:
        """Cookies sent with every request."""
        return CookiesAuth(params)

    @staticmethod
    def from_config(config: AuthConfig | None) -> AuthBase | None:
        """The authenticator of an `authentication:` config, or None without one."""
        if config is None:
            return None
        params = config.params
        match config.type:
            case AuthType.API_KEY | AuthType.BEARER if isinstance(params, TokenAuthParams):
                return AuthBuilder.token(params)
            case AuthType.BASIC if isinstance(params, BasicHttpAuthParams):
                return AuthBuilder.basic(params)
            case AuthType.OAUTH if isinstance(params, Oauth2AuthParams):
                return AuthBuilder.oauth2(params)
            case AuthType.COOKIES if isinstance(params, CookiesAuthParams):
                return AuthBuilder.cookies(params)
        raise ConfigError(
            f"authentication: type {config.type.value!r} does not take {type(params).__name__}"
        )
