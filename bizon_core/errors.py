"""The exception hierarchy: every error bizon raises on purpose derives from `BizonError`.

Each message is meant to be shown to a user as one line: it names the file, field,
source, stream or record concerned and never contains a secret.
"""

from __future__ import annotations

import requests


class BizonError(Exception):
    """Base class of every error raised by bizon."""

    #: Process exit code the CLI uses when this error ends a command.
    exit_code: int = 1


class ConfigError(BizonError):
    """A pipeline or connector configuration is invalid (bad YAML, field, secret, name)."""

    exit_code = 2


class DiscoveryError(ConfigError):
    """A source, stream or destination cannot be found."""


class SourceError(BizonError):
    """A source failed while fetching or returned something the contract forbids."""


class PaginationLoopError(SourceError):
    """A source returned a `next_pagination` already seen in the same run."""


class RecordError(SourceError):
    """A record breaks the contract (for example it has no id)."""


class DestinationError(BizonError):
    """A destination failed to write, commit or finalize."""


class StateError(BizonError):
    """The state store cannot be read or written, or a stream is already running."""


class HttpError(SourceError, requests.HTTPError):
    """An HTTP answer of status 400 or more, once `self.session`'s retries are spent.

    Also a `requests.HTTPError`, so `except requests.HTTPError` keeps working; the
    message holds the method, the URL without query or credentials, the status and a
    short excerpt of a JSON or text body, all redacted.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        method: str = "",
        url: str = "",
        response: requests.Response | None = None,
        summary: str | None = None,
    ) -> None:
        requests.HTTPError.__init__(self, message, response=response)
        self.status = status
        self.method = method
        self.url = url
        #: The message without the excerpt of the body.
        self.summary = summary or message

    def within(self, where: str) -> HttpError:
        """The same error, its message prefixed with `where` (the stream and page)."""
        return self._copy(f"{where}: {self}", f"{where}: {self.summary}")

    def with_detail(self, detail: str) -> HttpError:
        """The same error, with `detail` (the API's own message, redacted) instead of the
        excerpt of the body."""
        return self._copy(f"{self.summary}: {detail}", self.summary)

    def _copy(self, message: str, summary: str) -> HttpError:
        return HttpError(
            message,
            status=self.status,
            method=self.method,
            url=self.url,
            response=self.response,
            summary=summary,
        )
