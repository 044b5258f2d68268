"""Secret references (`env://`), registration, `redact`, `mask` and the logging filter."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from bizon_core import secrets
from bizon_core.errors import ConfigError
from bizon_core.secrets import (
    MASK,
    RedactingFilter,
    format_path,
    is_secret_key,
    mask,
    redact,
    register_secret,
    resolve_references,
)


@pytest.fixture(autouse=True)
def known_secrets(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """An empty registry of secrets for each test, so that tests do not see each other's."""
    registry: set[str] = set()
    monkeypatch.setattr(secrets, "_known_secrets", registry)
    return registry


def test_whole_value_reference(monkeypatch: pytest.MonkeyPatch, known_secrets: set[str]):
    monkeypatch.setenv("BIZON_TEST_TOKEN", "s3cr3t-value")
    resolved = resolve_references({"source": {"url": "https://x", "key": "env://BIZON_TEST_TOKEN"}})
    assert resolved == {"source": {"url": "https://x", "key": "s3cr3t-value"}}
    # A resolved reference is a secret whatever its key is called.
    assert "s3cr3t-value" in known_secrets
    assert redact("key=s3cr3t-value") == f"key={MASK}"


def test_inline_references(monkeypatch: pytest.MonkeyPatch, known_secrets: set[str]):
    monkeypatch.setenv("BIZON_TEST_USER", "alice-user")
    monkeypatch.setenv("BIZON_TEST_PASS", "p4ssw0rd")
    resolved = resolve_references(
        {"url": "postgres://${env://BIZON_TEST_USER}:${env://BIZON_TEST_PASS}@db/x"}
    )
    assert resolved == {"url": "postgres://alice-user:p4ssw0rd@db/x"}
    assert {"alice-user", "p4ssw0rd"} <= known_secrets


def test_references_in_lists_and_scalars(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("BIZON_TEST_SCOPE", "read-all")
    data = {"scopes": ["env://BIZON_TEST_SCOPE", "write"], "page_size": 10, "on": True, "x": None}
    assert resolve_references(data) == {
        "scopes": ["read-all", "write"],
        "page_size": 10,
        "on": True,
        "x": None,
    }
    assert data["scopes"][0] == "env://BIZON_TEST_SCOPE"  # the input is not modified


@pytest.mark.parametrize(
    "value",
    ["see env://BIZON_TEST_UNSET", "env://", "env://1BAD", "${env://BIZON_TEST_UNSET", "plain"],
)
def test_what_is_not_a_reference_is_kept(value: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("BIZON_TEST_UNSET", raising=False)
    assert resolve_references({"name": value}) == {"name": value}


def test_missing_variable_names_the_path(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("BIZON_TEST_MISSING", raising=False)
    config = {
        "source": {"authentication": {"params": {"token": "env://BIZON_TEST_MISSING"}}},
    }
    with pytest.raises(ConfigError) as raised:
        resolve_references(config)
    message = str(raised.value)
    assert message.startswith("source.authentication.params.token:")
    assert "BIZON_TEST_MISSING" in message
    assert "not set" in message


def test_missing_variable_inline_and_in_a_list(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("BIZON_TEST_MISSING", raising=False)
    with pytest.raises(ConfigError, match=r"^source\.headers\[1\]: .*BIZON_TEST_MISSING"):
        resolve_references({"source": {"headers": ["a", "x-${env://BIZON_TEST_MISSING}"]}})


def test_values_of_secret_keys_are_registered(known_secrets: set[str]):
    resolve_references(
        {
            "name": "visible-name",
            "auth": {
                "password": "hunter22",
                "client_secret": "cl13nt-s3cret",
                "cookies": {"session": "c00kie-value"},
                "api_keys": ["k3y-one", "k3y-two"],
                "short_token": "abc",
            },
        }
    )
    assert known_secrets == {
        "hunter22",
        "cl13nt-s3cret",
        "c00kie-value",
        "k3y-one",
        "k3y-two",
    }
    assert redact("visible-name hunter22 k3y-two abc") == f"visible-name {MASK} {MASK} abc"


@pytest.mark.parametrize(
    "key",
    [
        "token",
        "access_token",
        "Password",
        "passwd",
        "client_secret",
        "api_key",
        "apikey",
        "X_API_KEY",
        "credentials",
        "cookie",
        "Authorization",
        "private_key",
        "dsn",
    ],
)
def test_secret_keys(key: str):
    assert is_secret_key(key)


@pytest.mark.parametrize("key", ["name", "url", "stream", "page_size", "auth_method", "client_id"])
def test_other_keys(key: str):
    assert not is_secret_key(key)


def test_redact_masks_every_occurrence_longest_first():
    register_secret("abcd")
    register_secret("abcdef")
    assert redact("abcdef, abcd, abcdef") == f"{MASK}, {MASK}, {MASK}"


def test_short_or_empty_values_are_not_registered(known_secrets: set[str]):
    register_secret("")
    register_secret("abc")
    assert known_secrets == set()
    assert redact("abc") == "abc"
    assert redact("") == ""


def test_mask_of_a_nested_config():
    register_secret("known-s3cret")
    config = {
        "name": "pipe",
        "source": {
            "url": "https://api?sig=known-s3cret",
            "page_size": 10,
            "authentication": {
                "type": "oauth",
                "params": {
                    "client_id": "the-client",
                    "client_secret": "never-registered",
                    "refresh_token": "",
                    "access_token": None,
                    "scopes": ["read", "known-s3cret"],
                },
            },
            "cookies": {"sid": "1", "other": "2"},
            1: "int key",
        },
    }
    masked = mask(config)
    assert masked == {
        "name": "pipe",
        "source": {
            "url": f"https://api?sig={MASK}",
            "page_size": 10,
            "authentication": {
                "type": "oauth",
                "params": {
                    "client_id": "the-client",
                    "client_secret": MASK,
                    "refresh_token": "",
                    "access_token": None,
                    "scopes": ["read", MASK],
                },
            },
            "cookies": {"sid": MASK, "other": MASK},
            1: "int key",
        },
    }
    # A copy: the config itself keeps its values.
    assert config["source"]["authentication"]["params"]["client_secret"] == "never-registered"


def test_format_path():
    assert format_path(("source", "authentication", 0, "token")) == "source.authentication[0].token"
    assert format_path(()) == "<root>"


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A real logger whose handler writes through a `RedactingFilter` to a string."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter())
    logger = logging.Logger("bizon.test.secrets", level=logging.DEBUG)
    logger.addHandler(handler)
    yield logger, stream
    handler.close()


def test_filter_masks_message_args(logged: tuple[logging.Logger, io.StringIO]):
    logger, stream = logged
    register_secret("tok-1234567")
    logger.info("calling %s with token %s", "https://api", "tok-1234567")
    logger.warning("no secret here: %d pages", 3)
    assert stream.getvalue() == (
        f"INFO calling https://api with token {MASK}\nWARNING no secret here: 3 pages\n"
    )


def test_filter_masks_the_traceback(logged: tuple[logging.Logger, io.StringIO]):
    logger, stream = logged
    register_secret("pw-in-traceback")

    def fail(password: str) -> None:
        raise ValueError(f"login refused for password {password}")

    try:
        fail("pw-in-traceback")
    except ValueError:
        logger.exception("request failed")

    output = stream.getvalue()
    assert "pw-in-traceback" not in output
    assert output.startswith("ERROR request failed\nTraceback (most recent call last):")
    assert f"ValueError: login refused for password {MASK}" in output


def test_filter_masks_a_traceback_already_formatted(logged: tuple[logging.Logger, io.StringIO]):
    logger, stream = logged
    register_secret("pw-preformatted")
    try:
        raise RuntimeError("boom pw-preformatted")
    except RuntimeError as error:
        record = logger.makeRecord(
            logger.name, logging.ERROR, __file__, 1, "failed", None, (type(error), error, None)
        )
    # Another handler formatted it first: exc_text holds the secret in clear.
    record.exc_text = logging.Formatter().formatException(record.exc_info)
    assert "pw-preformatted" in record.exc_text
    logger.handle(record)
    assert "pw-preformatted" not in stream.getvalue()
    assert f"RuntimeError: boom {MASK}" in stream.getvalue()


def test_filter_without_known_secrets_changes_nothing(logged: tuple[logging.Logger, io.StringIO]):
    logger, stream = logged
    record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, "a %s", ("b",), None)
    assert RedactingFilter().filter(record) is True
    assert (record.msg, record.args) == ("a %s", ("b",))
    logger.handle(record)
    assert stream.getvalue() == "INFO a b\n"
