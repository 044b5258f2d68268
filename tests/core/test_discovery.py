"""Discovery parses connector files; it must never import them."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bizon_core.discovery import (
    ConnectorKind,
    discover,
    get_connector,
    load_connector_class,
)
from bizon_core.errors import ConfigError, DiscoveryError


def write_source(root: Path, name: str, body: str, **extra_files: str) -> Path:
    src = root / "sources" / name / "src"
    src.mkdir(parents=True)
    (src / "__init__.py").write_text("")
    (src / "source.py").write_text(textwrap.dedent(body))
    for filename, text in extra_files.items():
        (src / filename).write_text(textwrap.dedent(text))
    return src


@pytest.fixture
def user_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BIZON_CONNECTORS_PATH", str(tmp_path))
    return tmp_path


def test_builtin_connectors_are_listed():
    sources = discover(ConnectorKind.SOURCE)
    assert sources["dummy"].streams == ("creatures", "plants")
    assert sources["dummy"].supports_incremental
    destinations = discover(ConnectorKind.DESTINATION)
    assert {"file", "logger"} <= set(destinations)


def test_listing_does_not_import_a_connector_with_missing_dependencies(user_dir: Path):
    marker = user_dir / "imported"
    write_source(
        user_dir,
        "broken",
        f"""
        from pathlib import Path
        Path({str(marker)!r}).write_text("imported")
        import a_module_that_is_not_installed
        from bizon_core.source.source import AbstractSource

        class BrokenSource(AbstractSource):
            \"\"\"Needs a missing package.\"\"\"

            @staticmethod
            def streams():
                return ["alpha", "beta"]
        """,
    )
    info = discover(ConnectorKind.SOURCE)["broken"]
    assert info.streams == ("alpha", "beta")
    assert info.class_name == "BrokenSource"
    assert info.docstring == "Needs a missing package."
    assert not info.supports_incremental
    assert not marker.exists()
    with pytest.raises(ConfigError, match=r"source 'broken' could not be imported.*a_module_that"):
        load_connector_class(info)


def test_enum_streams_from_a_sibling_module_and_incremental_detection(user_dir: Path):
    write_source(
        user_dir,
        "enumerated",
        """
        from bizon_core import source
        from .config import MyStreams

        class Base(source.source.AbstractSource):
            def get_records_after(self, source_state, pagination=None):
                return self.get(pagination)

        class EnumeratedSource(Base):
            @staticmethod
            def streams():
                return [s.value for s in MyStreams]
        """,
        **{
            "config.py": """
            from enum import Enum

            class MyStreams(str, Enum):
                USERS = "users"
                ORDERS = "orders"
            """
        },
    )
    info = discover(ConnectorKind.SOURCE)["enumerated"]
    assert info.class_name == "EnumeratedSource"
    assert info.streams == ("users", "orders")
    assert info.supports_incremental


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('["a", "b"]', ("a", "b")),
        ('("a",)', ("a",)),
        ("[S.A, S.B.value]", ("x", "y")),
        ("list(S)", ("x", "y")),
        ("[*S]", ("x", "y")),
        ("[s for s in S]", ("x", "y")),
        ("compute_streams()", None),
    ],
)
def test_static_stream_expressions(user_dir: Path, expression: str, expected):
    write_source(
        user_dir,
        "expr",
        f"""
        from enum import StrEnum
        from bizon_core.source.source import AbstractSource

        class S(StrEnum):
            A = "x"
            B = "y"

        class ExprSource(AbstractSource):
            @staticmethod
            def streams():
                return {expression}
        """,
    )
    assert discover(ConnectorKind.SOURCE)["expr"].streams == expected


def test_user_directory_takes_precedence_and_loads_with_relative_imports(user_dir: Path):
    write_source(
        user_dir,
        "dummy",
        """
        from bizon_core.source.source import AbstractSource
        from .helpers import STREAMS

        class MyDummy(AbstractSource):
            @staticmethod
            def streams():
                return STREAMS
        """,
        **{"helpers.py": "STREAMS = ['mine']\n"},
    )
    info = get_connector(ConnectorKind.SOURCE, "dummy")
    assert info.path.is_relative_to(user_dir)
    assert info.streams is None  # a name from another module is not a literal
    assert load_connector_class(info).streams() == ["mine"]


def test_unknown_connector_lists_available_ones():
    with pytest.raises(DiscoveryError, match=r"unknown source 'nope'; available: .*dummy"):
        get_connector(ConnectorKind.SOURCE, "nope")


def test_files_that_are_not_connectors_are_skipped(user_dir: Path):
    write_source(user_dir, "syntax_error", "class Oops(:\n")
    write_source(user_dir, "no_class", "X = 1\n")
    names = set(discover(ConnectorKind.SOURCE))
    assert "syntax_error" not in names
    assert "no_class" not in names
    assert "dummy" in names
