"""The source contract, as tests: what every connector must do, checked against its fake API.

In a connector's tests, a few lines run every rule, one test per rule and stream::

    import pytest
    from bizon_core.testing.contract import SourceContract

    class TestMyApiContract(SourceContract):
        source = "myapi"
        cursor_field = "updated_at"          # for the incremental rules

        @pytest.fixture
        def source_config(self, my_fake_api):  # the `source:` section, less name and stream
            return {"base_url": my_fake_api.url,
                    "authentication": {"type": "bearer", "params": {"token": "t"}}}

The rules, each failing with a `ContractViolation` naming the rule, the stream, what
happened and how to fix it:

- `streams`: `streams()` is non-empty and what discovery reads from the files;
- `example-configs`: every `config/*.example.yml` validates with the config class;
- `check-connection`: `check_connection()` returns `(True, None)` against the fake API,
  and a `(bool, str | None)` in any case;
- `pagination-ends`: `get()` ends with `{}` within `max_pages` pages, never repeating one;
- `ids`: every record has an id, unique within the stream;
- `json`: every record's data is JSON-serialisable;
- `incremental-only-newer`, `incremental-keeps-changes`, `incremental-nothing-new`: with
  `last_run` between two records' cursor values, `get_records_after` returns every record
  after it and none before; with `last_run` after all of them, nothing. The expectation
  comes from a full fetch, so the fake API needs no change;
- `survives-faults`: the first requests answered 429 (`Retry-After: 1`) then 503 change
  nothing, at the shipped HTTP defaults. The faults come from a local forward proxy the
  rule starts and points `HTTP_PROXY` at, so any connector whose requests go through
  `self.session` to an `http://` fake API gets them, whatever that fake API is.

The rules are plain functions too (`check_pagination_ends(subject, stream)`, ...), for
a connector's own tests.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest
from pydantic import ValidationError

from bizon_core.config import describe_validation_error
from bizon_core.discovery import (
    CONNECTORS_PATH_ENV,
    ConnectorInfo,
    ConnectorKind,
    get_connector,
    load_connector_class,
)
from bizon_core.errors import BizonError, PaginationLoopError
from bizon_core.source.config import SourceConfig
from bizon_core.source.incremental import cursor_instant, cursor_value
from bizon_core.source.models import SourceIncrementalState, SourceRecord
from bizon_core.source.source import AbstractSource
from bizon_core.sync.pages import iterate_pages
from bizon_core.sync.state import TimeWindow
from bizon_core.testing.fault_proxy import FaultProxy
from bizon_core.yamlfile import read_yaml

GUIDE = "docs/adding-sources.md"


class ContractViolation(AssertionError):
    """A connector broke a rule of the source contract."""

    def __init__(self, rule: str, stream: str | None, what: str, fix: str):
        where = f"stream '{stream}': " if stream else ""
        super().__init__(f"rule '{rule}': {where}{what}; fix: {fix} (see {GUIDE})")
        self.rule = rule


@dataclass
class ContractSubject:
    """A source under test: its name, its `source:` config against the fake API."""

    source: str
    config: dict[str, Any]
    cursor_field: str | None = None
    max_pages: int = 1000
    _class: type[AbstractSource] | None = field(default=None, repr=False)

    @property
    def info(self) -> ConnectorInfo:
        return get_connector(ConnectorKind.SOURCE, self.source)

    @property
    def source_class(self) -> type[AbstractSource]:
        if self._class is None:
            self._class = load_connector_class(self.info)
        return self._class

    def streams(self) -> list[str]:
        declared = self.source_class.available_streams(self.config)
        return list(self.source_class.streams()) if declared is None else declared

    def stream_config(self, stream: str) -> SourceConfig:
        data = {**self.config, "name": self.source, "stream": stream}
        config = self.source_class.get_config_class().model_validate(data)
        return self.source_class.with_default_cursor_field(config)

    def open(self, stream: str) -> AbstractSource:
        return self.source_class(self.stream_config(stream))

    def read(
        self,
        stream: str,
        incremental: SourceIncrementalState | None = None,
        window: TimeWindow | None = None,
    ) -> list[SourceRecord]:
        """Every record of the stream (changed after `incremental.last_run`, or in the time
        partition `window`), page after page, within `max_pages`."""
        source = self.open(stream)
        fetch: Callable[[dict | None], Any] = source.get
        if incremental is not None:

            def fetch(pagination: dict | None) -> Any:
                return source.get_records_after(incremental, pagination)

        elif window is not None:

            def fetch(pagination: dict | None) -> Any:
                return source.get_records_between(window.start, window.end, pagination)

        records: list[SourceRecord] = []
        try:
            for number, page in enumerate(iterate_pages(fetch, None, stream), start=1):
                records.extend(page.iteration.records)
                if number >= self.max_pages and page.next_pagination:
                    raise ContractViolation(
                        "pagination-ends",
                        stream,
                        f"still returned a next_pagination after {number} pages "
                        f"({page.next_pagination})",
                        "return next_pagination={} on the last page (a paginator stops on an "
                        "empty page, a missing token or has_more false)",
                    )
        except PaginationLoopError as exc:
            raise ContractViolation(
                "pagination-ends", stream, str(exc), "return a new pagination for each page"
            ) from None
        finally:
            source.close()
        return records

    def cursor(self, stream: str) -> str | None:
        return self.cursor_field or self.stream_config(stream).cursor_field


def check_streams(subject: ContractSubject) -> None:
    streams = subject.streams()
    if not streams:
        raise ContractViolation(
            "streams", None, "streams() is empty", "return the names of the streams"
        )
    listed = subject.info.streams
    if listed is not None and list(listed) != list(subject.source_class.streams()):
        raise ContractViolation(
            "streams",
            None,
            f"discovery reads {list(listed)} from the files but streams() returns "
            f"{list(subject.source_class.streams())}",
            "return a literal list or an Enum's values from streams()",
        )


def check_example_configs(subject: ContractSubject) -> None:
    examples = sorted((subject.info.path.parent.parent / "config").glob("*.example.yml"))
    if not examples:
        raise ContractViolation(
            "example-configs", None, "no config/*.example.yml", "add an example pipeline"
        )
    config_class = subject.source_class.get_config_class()
    for example in examples:
        section = _placeholders(read_yaml(example).get("source") or {})
        streams = section.pop("streams", None) or [section.get("stream")]
        for stream in streams:
            try:
                config_class.model_validate({**section, "stream": stream})
            except ValidationError as exc:
                problem = describe_validation_error(exc, ("source",), config_class)
                raise ContractViolation(
                    "example-configs",
                    stream,
                    f"{example.name} does not validate: {problem}",
                    "make the example match the config class",
                ) from None


def check_connection(subject: ContractSubject, stream: str) -> None:
    source = subject.open(stream)
    try:
        answer = source.check_connection()
    finally:
        source.close()
    shaped = (
        isinstance(answer, tuple)
        and len(answer) == 2
        and isinstance(answer[0], bool)
        and (answer[1] is None or isinstance(answer[1], str))
    )
    if not shaped:
        raise ContractViolation(
            "check-connection",
            stream,
            f"check_connection() returned {answer!r}",
            "return (True, None) or (False, 'why')",
        )
    if answer != (True, None):
        raise ContractViolation(
            "check-connection",
            stream,
            f"check_connection() returned {answer!r} against the fake API",
            "check the request it makes, and return (True, None) when it succeeds",
        )


def check_pagination_ends(subject: ContractSubject, stream: str) -> None:
    subject.read(stream)


def check_ids(subject: ContractSubject, stream: str) -> None:
    seen: set[str] = set()
    records = subject.read(stream)
    if not records:
        raise ContractViolation(
            "ids", stream, "no records from the fake API", "serve some records to test"
        )
    for record in records:
        if record.id in seen:
            raise ContractViolation(
                "ids",
                stream,
                f"record id {record.id!r} appears twice",
                "use a field unique within the stream as the id (or join several)",
            )
        seen.add(record.id)


def check_json(subject: ContractSubject, stream: str) -> None:
    for record in subject.read(stream):
        try:
            orjson.dumps(record.data)
        except TypeError as exc:
            raise ContractViolation(
                "json",
                stream,
                f"record {record.id}: data is not JSON-serialisable ({exc})",
                "turn dates, decimals and objects into strings or numbers",
            ) from None


def check_incremental(subject: ContractSubject, stream: str) -> None:
    cursor_field = subject.cursor(stream)
    if cursor_field is None:
        pytest.skip("no cursor_field: set it on the contract class to test incremental")
    records = subject.read(stream)
    values = [cursor_value(r.data, cursor_field) for r in records]
    instants = sorted({cursor_instant(v) for v in values if v is not None})
    if len(instants) < 2:
        pytest.skip(f"the fake API serves fewer than two distinct '{cursor_field}' values")
    middle = len(instants) // 2
    last_run = instants[middle - 1] + (instants[middle] - instants[middle - 1]) / 2
    newer = {r.id for r in records if _after(r, cursor_field, last_run)}
    state = SourceIncrementalState(last_run=last_run, cursor_field=cursor_field)
    got = {r.id for r in subject.read(stream, state)}
    if older := got - newer:
        raise ContractViolation(
            "incremental-only-newer",
            stream,
            f"get_records_after({last_run.isoformat()}) returned {len(older)} records not "
            f"changed after it (e.g. {sorted(older)[:3]})",
            "filter on source_state.last_run (records_after() when the API cannot)",
        )
    if missed := newer - got:
        raise ContractViolation(
            "incremental-keeps-changes",
            stream,
            f"get_records_after({last_run.isoformat()}) missed {len(missed)} of the "
            f"{len(newer)} records changed after it (e.g. {sorted(missed)[:3]})",
            "compare instants, not strings (records_after()), and page to the end",
        )
    later = SourceIncrementalState(
        last_run=instants[-1] + timedelta(seconds=1), cursor_field=cursor_field
    )
    if leftover := subject.read(stream, later):
        raise ContractViolation(
            "incremental-nothing-new",
            stream,
            f"get_records_after after the newest record returned {len(leftover)} records",
            "return no records when nothing changed after last_run",
        )


def check_survives_faults(subject: ContractSubject, stream: str) -> None:
    expected = [r.id for r in subject.read(stream)]
    with FaultProxy(["429", "503"]) as proxy, _proxied(proxy.url):
        try:
            got = [r.id for r in subject.read(stream)]
        except BizonError as exc:
            raise ContractViolation(
                "survives-faults",
                stream,
                f"a 429 then a 503 failed the stream: {exc}",
                "send every request through self.session, which retries them",
            ) from None
    if proxy.answered < 2:
        raise ContractViolation(
            "survives-faults",
            stream,
            "no request went through the HTTP proxy, so no fault could be injected",
            "send requests through self.session, to an http:// fake API",
        )
    if got != expected:
        raise ContractViolation(
            "survives-faults",
            stream,
            f"after a 429 and a 503, {len(got)} records instead of {len(expected)}",
            "retry the failed request itself, not the next page",
        )


class SourceContract:
    """Subclass in a connector's tests: set `source`, define the `source_config` fixture."""

    source: ClassVar[str]
    #: Streams to test; None: all of them (`available_streams` of the config, or `streams()`).
    streams: ClassVar[Sequence[str] | None] = None
    #: The field the incremental rules compare; None: the config's `cursor_field`.
    cursor_field: ClassVar[str | None] = None
    max_pages: ClassVar[int] = 1000
    #: Why the fault rule cannot apply (e.g. no HTTP at all); None: it applies.
    no_faults_because: ClassVar[str | None] = None

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "stream" in metafunc.fixturenames:
            streams = self.streams
            if streams is None:
                own_dir = _with_own_dir(Path(metafunc.definition.path))
                with _environment({CONNECTORS_PATH_ENV: own_dir}):
                    info = get_connector(ConnectorKind.SOURCE, self.source)
                    streams = info.streams or load_connector_class(info).streams()
            metafunc.parametrize("stream", list(streams))

    @pytest.fixture(autouse=True)
    def _own_connectors_dir(self, request: pytest.FixtureRequest, monkeypatch: Any) -> None:
        """A test in `<dir>/sources/<name>/tests/` finds its connector: `<dir>` goes first
        on `BIZON_CONNECTORS_PATH`."""
        monkeypatch.setenv(CONNECTORS_PATH_ENV, _with_own_dir(Path(request.path)))

    @pytest.fixture
    def source_config(self) -> dict[str, Any]:
        raise NotImplementedError("define a source_config fixture: the source's config")

    @pytest.fixture
    def subject(self, source_config: dict[str, Any]) -> ContractSubject:
        return ContractSubject(self.source, source_config, self.cursor_field, self.max_pages)

    def test_streams(self, subject: ContractSubject) -> None:
        check_streams(subject)

    def test_example_configs(self, subject: ContractSubject) -> None:
        check_example_configs(subject)

    def test_check_connection(self, subject: ContractSubject, stream: str) -> None:
        check_connection(subject, stream)

    def test_pagination_ends(self, subject: ContractSubject, stream: str) -> None:
        check_pagination_ends(subject, stream)

    def test_ids(self, subject: ContractSubject, stream: str) -> None:
        check_ids(subject, stream)

    def test_json(self, subject: ContractSubject, stream: str) -> None:
        check_json(subject, stream)

    def test_incremental(self, subject: ContractSubject, stream: str) -> None:
        if not subject.source_class.supports_incremental():
            pytest.skip(f"source '{self.source}' is full refresh only")
        check_incremental(subject, stream)

    def test_survives_faults(self, subject: ContractSubject, stream: str) -> None:
        if self.no_faults_because:
            pytest.skip(self.no_faults_because)
        check_survives_faults(subject, stream)


def _with_own_dir(test_file: Path) -> str:
    """`BIZON_CONNECTORS_PATH` with the connectors directory of `test_file` first, when the
    test is laid out as `<dir>/sources/<name>/tests/test_*.py`."""
    paths = list(filter(None, os.environ.get(CONNECTORS_PATH_ENV, "").split(os.pathsep)))
    if test_file.parent.name == "tests" and test_file.parents[2].name == "sources":
        paths.insert(0, str(test_file.parents[3]))
    return os.pathsep.join(paths)


def _after(record: SourceRecord, cursor_field: str, moment: datetime) -> bool:
    value = cursor_value(record.data, cursor_field)
    return value is not None and cursor_instant(value) > moment


def _placeholders(value: Any) -> Any:
    """A config with `env://` references replaced by a stand-in, for validation only."""
    if isinstance(value, dict):
        return {k: _placeholders(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_placeholders(v) for v in value]
    if isinstance(value, str) and value.startswith("env://"):
        return "example-value"
    return value


@contextmanager
def _proxied(url: str) -> Iterator[None]:
    """Requests through the proxy at `url`, none bypassing it."""
    with _environment({"HTTP_PROXY": url, "http_proxy": url, "NO_PROXY": None, "no_proxy": None}):
        yield


@contextmanager
def _environment(values: dict[str, str | None]) -> Iterator[None]:
    """Environment variables set (None: unset) for the block, then restored."""
    saved = {name: os.environ.get(name) for name in values}
    try:
        _set_environment(values)
        yield
    finally:
        _set_environment(saved)


def _set_environment(values: dict[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


__all__ = [
    "ContractSubject",
    "ContractViolation",
    "SourceContract",
    "check_connection",
    "check_example_configs",
    "check_ids",
    "check_incremental",
    "check_json",
    "check_pagination_ends",
    "check_streams",
    "check_survives_faults",
]
