"""Secret references in configs (`env://VAR`, `${env://VAR}`) and redaction of secret values.

Every value resolved from a reference, and every value of a secret-looking key
(token, password, client_secret, ...), is registered so that `redact()` and the
`RedactingFilter` logging filter can replace it with `***` wherever it would be shown.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from bizon_core.errors import ConfigError

MASK = "***"
_WHOLE_REF = re.compile(r"^env://([A-Za-z_][A-Za-z0-9_]*)$")
_INLINE_REF = re.compile(r"\$\{env://([A-Za-z_][A-Za-z0-9_]*)\}")
SECRET_KEY_PATTERN = re.compile(
    r"(token|password|passwd|secret|api[_-]?key|credential|cookie|authorization|private_?key|dsn)",
    re.IGNORECASE,
)
# Secrets shorter than this are not redacted inside other text: masking "a" everywhere
# would make every message unreadable and protect nothing.
_MIN_REDACTED_LENGTH = 4

_lock = threading.Lock()
_known_secrets: set[str] = set()


def register_secret(value: str) -> None:
    """Remember `value` as a secret so that `redact()` masks it from now on."""
    if isinstance(value, str) and len(value) >= _MIN_REDACTED_LENGTH:
        with _lock:
            _known_secrets.add(value)


def redact(text: str) -> str:
    """Return `text` with every registered secret replaced by `***`."""
    if not _known_secrets or not text:
        return text
    with _lock:
        secrets = sorted(_known_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def is_secret_key(key: str) -> bool:
    """Whether a config key holds a secret by its name (token, password, ...)."""
    return bool(SECRET_KEY_PATTERN.search(key))


def resolve_references(value: Any, path: tuple[str | int, ...] = ()) -> Any:
    """Resolve `env://VAR` and `${env://VAR}` in a parsed config, recursively.

    Resolved values and values of secret-looking keys are registered as secrets.
    A missing variable raises `ConfigError` naming the config path.
    """
    if isinstance(value, Mapping):
        resolved = {k: resolve_references(v, (*path, k)) for k, v in value.items()}
        for key, item in resolved.items():
            if isinstance(key, str) and is_secret_key(key):
                _register_all(item)
        return resolved
    if isinstance(value, list):
        return [resolve_references(v, (*path, i)) for i, v in enumerate(value)]
    if isinstance(value, str):
        whole = _WHOLE_REF.match(value)
        if whole:
            return _lookup(whole.group(1), path)
        if "${env://" in value:
            return _INLINE_REF.sub(lambda m: _lookup(m.group(1), path), value)
    return value


def mask(value: Any, key: str | None = None) -> Any:
    """A copy of a config value fit for display: secret keys and known secrets become `***`."""
    if key is not None and is_secret_key(key) and value not in (None, "", {}, []):
        return MASK if not isinstance(value, Mapping) else {k: MASK for k in value}
    if isinstance(value, Mapping):
        return {k: mask(v, k if isinstance(k, str) else None) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v) for v in value]
    if isinstance(value, str):
        return redact(value)
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


def _lookup(variable: str, path: tuple[str | int, ...]) -> str:
    value = os.environ.get(variable)
    if value is None:
        raise ConfigError(
            f"{format_path(path)}: environment variable {variable} is not set "
            f"(referenced as env://{variable})"
        )
    register_secret(value)
    return value


def _register_all(value: Any) -> None:
    if isinstance(value, str):
        register_secret(value)
    elif isinstance(value, Mapping):
        for item in value.values():
            _register_all(item)
    elif isinstance(value, list):
        for item in value:
            _register_all(item)
