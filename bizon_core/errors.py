"""The exception hierarchy: every error bizon raises on purpose derives from `BizonError`.

Each message is meant to be shown to a user as one line: it names the file, field,
source, stream or record concerned and never contains a secret.
"""

from __future__ import annotations


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
