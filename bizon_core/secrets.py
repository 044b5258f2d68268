"""Secrets: what is secret, how it is kept out of what bizon shows, and out of stored state.

A value is secret because of where it comes from, never because of a key's name:

- every value resolved from an `env://VAR` or `${env://VAR}` reference;
- every value of a field declared `Secret` in a config model (auth params, passwords,
  a connector's own API key), registered when the model validates it;
- values an authenticator obtains at run time (OAuth access and rotated refresh tokens).

Registered values are replaced by `***` in messages (`redact`, `mask`, and the
`RedactingFilter` on the project's loggers). In stored state (checkpoints) they are
replaced by a reference `${secret:<name>}` instead (`seal`), which `unseal` turns back into
the exact value: the name is where the secret comes from (`env:VAR`, or the config path
of a `Secret` field, e.g. `source.authentication.params.token`), so it says nothing about
the value and a new process that loaded the same pipeline resolves it again.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, WithJsonSchema

from bizon_core.errors import ConfigError, StateError

MASK = "***"
_ENV_PREFIX = "env://"
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INLINE_REF = re.compile(r"\$\{env://([^}]*)\}")
_SEALED_REF = re.compile(r"\$\{secret:([^}]*)\}")
#: The name of a secret registered without one (e.g. by a connector's own code): a
#: reference to it can be stored, but not resolved by another process.
UNDECLARED = "undeclared"
# Secrets shorter than this are not redacted inside other text: masking "a" everywhere
# would make every message unreadable and protect nothing. A whole value equal to a
# secret is masked whatever its length.
_MIN_REDACTED_LENGTH = 4
#: The namespaces of the project's loggers: bizon's packages and the connectors it loads.
PROJECT_LOGGERS = ("bizon", "bizon_core", "bizon_dagster", "bizon_connectors")

_lock = threading.Lock()
#: Every known secret value -> its names (see `_reference_name`); `unseal` resolves any.
_known_secrets: dict[str, list[str]] = {}


def register_secret(value: str, name: str | None = None) -> None:
    """Remember `value` as a secret: it is masked in messages and sealed in state from now on.

    `name` says where the value comes from (`env:VAR`, a config path, `oauth.access_token`);
    a value may get several names.
    """
    if isinstance(value, str) and value:
        with _lock:
            names = _known_secrets.setdefault(value, [])
            if name is not None and name not in names:
                names.append(name)


def _register_field(value: str | None) -> str | None:
    if value is not None:
        register_secret(value)
    return value


Secret = Annotated[
    str,
    AfterValidator(_register_field),
    WithJsonSchema({"type": "string", "writeOnly": True, "format": "password", "secret": True}),
]
"""A config field holding a secret: `password: Secret | None = None`, `cookies: dict[str, Secret]`.

The value is a plain `str` at run time and registered (`register_secret`) when the model
validates it. Not pydantic's `SecretStr`: connectors pass these values on as strings
(`TokenAuthParams(token=self.config.authentication.params.token)`, f-strings of tokens in
URLs), which a `SecretStr` would silently turn into `**********`; masking registered values
in every message and sealing them in state protects the places a `SecretStr` would not
(a token inside a URL, an error text, a traceback).
"""


def redact(text: str) -> str:
    """Return `text` with every registered secret replaced by `***`."""
    if not _known_secrets or not text:
        return text
    return _replace_secrets(text, lambda _secret, _name: MASK)


def mask(value: Any) -> Any:
    """A copy of a value fit for display: registered secrets in its strings become `***`."""
    return _map_strings(value, redact)


def seal(value: Any) -> Any:
    """A copy of `value` (nested dicts and lists) fit to be stored: every registered secret
    in its strings is replaced by a reference `${secret:<name>}` that `unseal` resolves."""
    if not _known_secrets:
        return value
    return _map_strings(value, _seal_text)


def unseal(value: Any) -> Any:
    """The value `seal` was given: each `${secret:<name>}` back to the secret's exact value.

    A name no secret of this process has (the config no longer declares it) raises
    `StateError`.
    """
    with _lock:
        by_name = {name: secret for secret, names in _known_secrets.items() for name in names}

    def resolve(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == UNDECLARED or name not in by_name:
            raise StateError(
                f"the checkpoint refers to secret '{name}', which this pipeline no longer "
                "configures"
            )
        return by_name[name]

    return _map_strings(
        value, lambda text: _SEALED_REF.sub(resolve, text) if "${secret:" in text else text
    )


def name_config_secrets(config: Any, path: tuple[str | int, ...] = ()) -> None:
    """Name each registered secret found in `config` after the config path holding it.

    Called once a pipeline config is validated (which registers its `Secret` fields'
    values): a secret that came in the file has its path as name, stable for the file.
    """
    if isinstance(config, Mapping):
        for key, item in config.items():
            name_config_secrets(item, (*path, key))
    elif isinstance(config, list):
        for index, item in enumerate(config):
            name_config_secrets(item, (*path, index))
    elif isinstance(config, str) and config in _known_secrets:
        register_secret(config, format_path(path))


def resolve_references(value: Any, path: tuple[str | int, ...] = ()) -> Any:
    """Resolve `env://VAR` and `${env://VAR}` in a parsed config, recursively.

    Resolved values are registered as secrets named `env:VAR`. A missing variable, or a
    reference without a valid variable name, raises `ConfigError` naming the config path.
    """
    if isinstance(value, Mapping):
        return {k: resolve_references(v, (*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_references(v, (*path, i)) for i, v in enumerate(value)]
    if isinstance(value, str):
        if value.startswith(_ENV_PREFIX):
            return _lookup(value.removeprefix(_ENV_PREFIX), path)
        if "${env://" in value:
            return _INLINE_REF.sub(lambda m: _lookup(m.group(1), path), value)
    return value


def format_path(path: Iterable[str | int]) -> str:
    """`("source", "authentication", 0)` -> `source.authentication[0]`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


class RedactingFilter(logging.Filter):
    """A logging filter that masks registered secrets in every record it sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _known_secrets:
            message = record.getMessage()
            cleaned = redact(message)
            if cleaned != message:
                record.msg, record.args = cleaned, None
            if record.exc_info and not record.exc_text:
                # Formatters reuse exc_text when set: the traceback is shown redacted.
                record.exc_text = redact(_FORMATTER.formatException(record.exc_info))
            if record.exc_text:
                record.exc_text = redact(record.exc_text)
            if record.stack_info:
                record.stack_info = redact(record.stack_info)
        return True


_FORMATTER = logging.Formatter()
_REDACTING_FILTER = RedactingFilter()


def install_log_redaction() -> None:
    """Attach the `RedactingFilter` to every logger of the project (`PROJECT_LOGGERS`).

    A logger's filters see the records made on that logger, before any handler does, so
    what reaches a handler (the CLI's, Dagster's compute logs and event log, a user's) is
    already redacted. Those filters do not apply to records of child loggers, hence one
    filter per logger: this covers every project and connector module logger that exists
    when it runs, and is called again once a pipeline's connectors are imported and when a
    sync starts. Idempotent.
    """
    manager = logging.Logger.manager
    names = [
        name
        for name in list(manager.loggerDict)
        if any(name == root or name.startswith(root + ".") for root in PROJECT_LOGGERS)
    ]
    for name in (*PROJECT_LOGGERS, *names):
        logger = logging.getLogger(name)
        if _REDACTING_FILTER not in logger.filters:
            logger.addFilter(_REDACTING_FILTER)


def _lookup(variable: str, path: tuple[str | int, ...]) -> str:
    where = format_path(path)
    if not variable:
        raise ConfigError(f"{where}: env:// names no environment variable (write env://NAME)")
    if not _VARIABLE.fullmatch(variable):
        raise ConfigError(f"{where}: env://{variable}: not a valid environment variable name")
    value = os.environ.get(variable)
    if value is None:
        raise ConfigError(
            f"{where}: environment variable {variable} is not set (referenced as env://{variable})"
        )
    register_secret(value, f"env:{variable}")
    return value


def _seal_text(text: str) -> str:
    return _replace_secrets(text, lambda _secret, names: f"${{secret:{_reference_name(names)}}}")


def _reference_name(names: list[str]) -> str:
    """The name `seal` writes: an environment variable's is the same in every pipeline
    file of a deployment, so it is preferred to a config path."""
    return next((n for n in names if n.startswith("env:")), names[0] if names else UNDECLARED)


def _replace_secrets(text: str, replacement: Callable[[str, list[str]], str]) -> str:
    """`text` with each registered secret replaced by `replacement(secret, names)`.

    A whole value equal to a secret is replaced whatever its length; inside longer text,
    secrets of `_MIN_REDACTED_LENGTH` characters or more, in one pass, longest first.
    """
    known, pattern = _snapshot()
    if text in known:
        return replacement(text, known[text])
    if pattern is None:
        return text
    return pattern.sub(lambda m: replacement(m.group(0), known[m.group(0)]), text)


_snapshot_cache: tuple[dict[str, list[str]], dict[str, list[str]], re.Pattern[str] | None]
_snapshot_cache = ({}, {}, None)


def _snapshot() -> tuple[dict[str, list[str]], re.Pattern[str] | None]:
    """A copy of the registry and a pattern of its secrets, rebuilt when it changed."""
    global _snapshot_cache
    with _lock:
        source, known, pattern = _snapshot_cache
        if source is not _known_secrets or known != _known_secrets:
            known = {secret: list(names) for secret, names in _known_secrets.items()}
            long_ones = sorted((s for s in known if len(s) >= _MIN_REDACTED_LENGTH), key=len)
            pattern = (
                re.compile("|".join(re.escape(s) for s in reversed(long_ones)))
                if long_ones
                else None
            )
            _snapshot_cache = (_known_secrets, known, pattern)
    return known, pattern


def _map_strings(value: Any, function: Callable[[str], str]) -> Any:
    """A copy of nested dicts, lists and tuples with `function` applied to each string."""
    if isinstance(value, str):
        return function(value)
    if isinstance(value, Mapping):
        return {k: _map_strings(v, function) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_map_strings(v, function) for v in value]
    return value
