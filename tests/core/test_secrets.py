"""Secret references (`env://`), the `Secret` type, `redact`, `mask`, `seal` and the log filter."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from pydantic import BaseModel

from bizon_core import secrets
from bizon_core.errors import ConfigError, StateError
from bizon_core.secrets import (
    MASK,
    RedactingFilter,
    Secret,
    format_path,
    install_log_redaction,
    mask,
    name_config_secrets,
    redact,
    register_secret,
    resolve_references,
    seal,
    unseal,
)
from bizon_core.source.auth.authenticators.basic import BasicHttpAuthParams
from bizon_core.source.auth.authenticators.cookies import CookiesAuthParams
from bizon_core.source.auth.authenticators.oauth import Oauth2AuthParams
from bizon_core.source.auth.authenticators.token import TokenAuthParams


@pytest.fixture(autouse=True)
def known_secrets(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """An empty registry of secrets for each test, so that tests do not see each other's."""
    registry: dict[str, list[str]] = {}
    monkeypatch.setattr(secrets, "_known_secrets", registry)
    return registry


def test_whole_value_reference(monkeypatch: pytest.MonkeyPatch, known_secrets: dict):
    monkeypatch.setenv("BIZON_TEST_TOKEN", "s3cr3t-value")
    resolved = resolve_references({"source": {"url": "https://x", "key": "env://BIZON_TEST_TOKEN"}})
    assert resolved == {"source": {"url": "https://x", "key": "s3cr3t-value"}}
    # A resolved reference is a secret whatever its key is called, named by its variable.
    assert known_secrets == {"s3cr3t-value": ["env:BIZON_TEST_TOKEN"]}
    assert redact("key=s3cr3t-value") == f"key={MASK}"


def test_inline_references(monkeypatch: pytest.MonkeyPatch, known_secrets: dict):
    monkeypatch.setenv("BIZON_TEST_USER", "alice-user")
    monkeypatch.setenv("BIZON_TEST_PASS", "p4ssw0rd")
    resolved = resolve_references(
        {"url": "postgres://${env://BIZON_TEST_USER}:${env://BIZON_TEST_PASS}@db/x"}
    )
    assert resolved == {"url": "postgres://alice-user:p4ssw0rd@db/x"}
    assert known_secrets == {
        "alice-user": ["env:BIZON_TEST_USER"],
        "p4ssw0rd": ["env:BIZON_TEST_PASS"],
    }


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
    "value", ["see env://BIZON_TEST_UNSET", "${env://BIZON_TEST_UNSET", "plain"]
)
def test_what_is_not_a_reference_is_kept(value: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("BIZON_TEST_UNSET", raising=False)
    assert resolve_references({"name": value}) == {"name": value}


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("env://", "env:// names no environment variable"),
        ("env://1BAD", "env://1BAD: not a valid environment variable name"),
        ("x-${env://}", "env:// names no environment variable"),
        ("x-${env://A B}", "env://A B: not a valid environment variable name"),
    ],
)
def test_a_reference_without_a_variable_name_names_the_field(value: str, problem: str):
    with pytest.raises(ConfigError) as raised:
        resolve_references({"source": {"authentication": {"params": {"token": value}}}})
    assert str(raised.value) == f"source.authentication.params.token: {problem}" + (
        " (write env://NAME)" if "names no" in problem else ""
    )


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


def test_secret_key_names_are_not_secrets(known_secrets: dict):
    """Secrets are declared by type: a key that looks like one makes nothing secret."""
    resolve_references(
        {
            "token_refresh_endpoint": "https://auth.example/oauth/token",
            "response_field_access_token": "access_token",
            "pagination": {"page_token": "abc123"},
            "password": "written-in-clear",
        }
    )
    assert known_secrets == {}
    assert mask({"page_token": "abc123", "x": "https://auth.example/oauth/token"}) == {
        "page_token": "abc123",
        "x": "https://auth.example/oauth/token",
    }


def test_declared_secret_fields_are_registered(known_secrets: dict):
    TokenAuthParams(token="t0ken-value")
    BasicHttpAuthParams(username="alice", password="pw")
    CookiesAuthParams(cookies={"sid": "c00kie-value", "other": "c00kie-2"})
    oauth = Oauth2AuthParams(
        token_refresh_endpoint="https://auth.example/oauth/token",
        client_id="the-client",
        client_secret="cl13nt-s3cret",
        refresh_token="r3fresh",
        access_token="acc3ss",
    )
    assert set(known_secrets) == {
        "t0ken-value",
        "pw",
        "c00kie-value",
        "c00kie-2",
        "cl13nt-s3cret",
        "r3fresh",
        "acc3ss",
    }
    # Plain strings at run time: what a connector passes on is the value itself.
    assert isinstance(oauth.client_secret, str) and oauth.client_secret == "cl13nt-s3cret"
    assert f"{TokenAuthParams(token='t0ken-value').token}" == "t0ken-value"
    # Readable fields stay readable.
    assert redact(f"OAuth2 token request to {oauth.token_refresh_endpoint} failed") == (
        "OAuth2 token request to https://auth.example/oauth/token failed"
    )
    assert redact(f"{oauth.response_field_access_token} missing") == "access_token missing"


def test_the_secret_type_in_a_connector_model_and_its_schema(known_secrets: dict):
    class ApiConfig(BaseModel):
        base_url: str
        api_key: Secret
        password: Secret | None = None

    ApiConfig(base_url="https://api.example", api_key="k3y-value")
    assert known_secrets == {"k3y-value": []}
    schema = ApiConfig.model_json_schema()["properties"]
    assert schema["api_key"]["writeOnly"] is True and schema["api_key"]["secret"] is True
    assert "writeOnly" not in schema["base_url"]


def test_config_secrets_are_named_by_their_path(known_secrets: dict, monkeypatch):
    monkeypatch.setenv("BIZON_TEST_KEY", "from-the-env")
    config = resolve_references(
        {"source": {"key": "env://BIZON_TEST_KEY", "auth": {"params": {"token": "literal-tok"}}}}
    )
    TokenAuthParams(token=config["source"]["auth"]["params"]["token"])
    name_config_secrets(config)
    assert known_secrets == {
        "from-the-env": ["env:BIZON_TEST_KEY", "source.key"],
        "literal-tok": ["source.auth.params.token"],
    }
    # In state, a variable's name is preferred: it is the same in every pipeline file.
    assert seal(["from-the-env", "literal-tok"]) == [
        "${secret:env:BIZON_TEST_KEY}",
        "${secret:source.auth.params.token}",
    ]
    # Any of a secret's names resolves.
    assert unseal("${secret:source.key}") == "from-the-env"


def test_redact_masks_every_occurrence_longest_first():
    register_secret("abcd")
    register_secret("abcdef")
    assert redact("abcdef, abcd, abcdef") == f"{MASK}, {MASK}, {MASK}"


def test_short_secrets_are_masked_only_as_whole_values(known_secrets: dict):
    register_secret("")
    register_secret("abc")
    assert known_secrets == {"abc": []}
    assert redact("abc") == MASK
    assert redact("abcdef") == "abcdef"  # inside other text, too short to mask
    assert redact("") == ""


def test_mask_of_a_nested_config():
    register_secret("known-s3cret")
    register_secret("pw")
    config = {
        "name": "pipe",
        "source": {
            "url": "https://api?sig=known-s3cret",
            "page_size": 10,
            "authentication": {
                "type": "oauth",
                "params": {
                    "token_refresh_endpoint": "https://auth/oauth/token",
                    "client_id": "the-client",
                    "client_secret": "pw",
                    "refresh_token": "",
                    "access_token": None,
                    "scopes": ["read", "known-s3cret"],
                },
            },
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
                    "token_refresh_endpoint": "https://auth/oauth/token",
                    "client_id": "the-client",
                    "client_secret": MASK,
                    "refresh_token": "",
                    "access_token": None,
                    "scopes": ["read", MASK],
                },
            },
            1: "int key",
        },
    }
    # A copy: the config itself keeps its values.
    assert config["source"]["authentication"]["params"]["client_secret"] == "pw"


def test_seal_stores_references_and_unseal_gives_the_exact_value_back(known_secrets: dict):
    register_secret("k3y-in-url", "env:API_KEY")
    register_secret("k3y-in-url-longer", "source.api_key")
    pagination = {
        "next_url": "https://api/v1/k3y-in-url/items?key=k3y-in-url-longer&after=20",
        "page_token": "abc123",
        "pages": [3, "k3y-in-url"],
        "n": 7,
    }
    sealed = seal(pagination)
    assert sealed == {
        "next_url": "https://api/v1/${secret:env:API_KEY}/items?key=${secret:source.api_key}"
        "&after=20",
        "page_token": "abc123",
        "pages": [3, "${secret:env:API_KEY}"],
        "n": 7,
    }
    assert "k3y-in-url" not in str(sealed)
    assert unseal(sealed) == pagination

    # A new process that loaded the same config knows the same names.
    known_secrets.clear()
    register_secret("k3y-in-url", "env:API_KEY")
    register_secret("k3y-in-url-longer", "source.api_key")
    assert unseal(sealed) == pagination


def test_unseal_of_a_secret_no_longer_configured_is_a_state_error(known_secrets: dict):
    register_secret("k3y-in-url", "env:API_KEY")
    sealed = seal({"next_url": "https://api/k3y-in-url/items"})
    known_secrets.clear()
    with pytest.raises(StateError, match=r"secret 'env:API_KEY', which this pipeline no longer"):
        unseal(sealed)
    register_secret("from-the-code")  # registered without a name: not resolvable later
    with pytest.raises(StateError, match="secret 'undeclared'"):
        unseal(seal({"x": "from-the-code"}))


def test_seal_without_secrets_changes_nothing():
    value = {"page_token": "abc", "next": "https://api/items?after=3"}
    assert seal(value) == value and unseal(value) == value


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


def test_project_loggers_redact_before_any_handler():
    """The filter sits on each project logger: a handler of someone else (Dagster's) gets
    the record already redacted, for loggers of every project namespace."""
    register_secret("tok-in-a-url")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)  # no filter of its own
    names = ["bizon_core.test_module", "bizon_connectors.sources.x.source", "bizon.destination.y"]
    loggers = [logging.getLogger(name) for name in names]
    other = logging.getLogger("somebody_else.module")
    install_log_redaction()
    try:
        for logger in (*loggers, other):
            logger.addHandler(handler)
            logger.warning("GET https://api/%s/items: HTTP 503", "tok-in-a-url")
    finally:
        for logger in (*loggers, other):
            logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert lines[:3] == [f"GET https://api/{MASK}/items: HTTP 503"] * 3
    assert lines[3] == "GET https://api/tok-in-a-url/items: HTTP 503"  # not ours to change
    install_log_redaction()  # idempotent
    assert loggers[0].filters.count(secrets._REDACTING_FILTER) == 1
