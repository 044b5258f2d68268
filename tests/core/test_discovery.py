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


_BASE_MODULE = """
from pathlib import Path
from bizon_core.source.source import AbstractSource

Path(__file__).with_name("imported").write_text("base.py was imported")


class MyBase(AbstractSource):
    \"\"\"Shared by the connector's sources.\"\"\"

    @staticmethod
    def streams():
        return ["alpha", "beta"]

    def get_records_after(self, source_state, pagination=None):
        return self.get(pagination)
"""


@pytest.mark.parametrize(
    ("imports", "base"),
    [
        ("from .base import MyBase", "MyBase"),
        ("from .base import MyBase as Parent", "Parent"),
        ("from . import base", "base.MyBase"),
        ("from .sub.deeper import MyBase", "MyBase"),
        ("from bizon_connectors.sources.split.base import MyBase", "MyBase"),
        ("import bizon_connectors.sources.split.base as b", "b.MyBase"),
        (
            "import bizon_connectors.sources.split.base",
            "bizon_connectors.sources.split.base.MyBase",
        ),
        ("from .reexport import MyBase", "MyBase"),
        ("from .base import MyBase\nParent = MyBase", "Parent"),
    ],
)
def test_a_base_class_in_another_file_of_the_connector(user_dir: Path, imports: str, base: str):
    src = write_source(
        user_dir,
        "split",
        f'{imports}\n\n\nclass MySource({base}):\n    """The connector\'s source."""\n',
        **{
            "base.py": _BASE_MODULE,
            "reexport.py": "from .base import *\nfrom .base import MyBase\n",
        },
    )
    (src / "sub").mkdir()
    (src / "sub" / "__init__.py").write_text("")
    (src / "sub" / "deeper.py").write_text("from ..base import MyBase\n")

    info = discover(ConnectorKind.SOURCE)["split"]
    assert info.class_name == "MySource"
    assert info.docstring == "The connector's source."
    assert info.streams == ("alpha", "beta")  # inherited from the base in base.py
    assert info.supports_incremental  # get_records_after inherited from it too
    assert not (src / "imported").exists()  # listing imported nothing
    assert load_connector_class(info).streams() == ["alpha", "beta"]


@pytest.mark.parametrize(
    "imports",
    [
        "from bizon_core.source.source import AbstractSource as Base",
        "import bizon_core.source.source as sdk\nBase = sdk.AbstractSource",
        "from bizon_core.source import source as sdk\nBase = sdk.AbstractSource",
    ],
)
def test_an_aliased_sdk_base_class(user_dir: Path, imports: str):
    write_source(
        user_dir,
        "aliased",
        imports
        + textwrap.dedent(
            """

            class AliasedSource(Base):
                @staticmethod
                def streams():
                    return ["only"]
            """
        ),
    )
    info = discover(ConnectorKind.SOURCE)["aliased"]
    assert info.class_name == "AliasedSource"
    assert info.streams == ("only",)
    assert load_connector_class(info).streams() == ["only"]


def test_the_most_derived_class_is_the_connector_across_files(user_dir: Path):
    write_source(
        user_dir,
        "layers",
        """
        from .base import MyBase

        class Middle(MyBase):
            pass

        class Leaf(Middle):
            @staticmethod
            def streams():
                return ["leaf"]

        class Helper:
            pass
        """,
        **{"base.py": _BASE_MODULE},
    )
    info = discover(ConnectorKind.SOURCE)["layers"]
    assert info.class_name == "Leaf"
    assert info.streams == ("leaf",)
    assert info.supports_incremental


def test_an_alias_of_something_else_is_not_a_source(user_dir: Path):
    write_source(
        user_dir,
        "impostor",
        """
        from pydantic import BaseModel as AbstractSource

        class NotASource(AbstractSource):
            pass
        """,
    )
    assert "impostor" not in discover(ConnectorKind.SOURCE)


def test_cyclic_or_broken_imports_leave_the_connector_out_without_failing(user_dir: Path):
    write_source(
        user_dir,
        "cyclic",
        """
        from .a import Base

        class CyclicSource(Base):
            pass
        """,
        **{"a.py": "from .b import Base\n", "b.py": "from .a import Base\n"},
    )
    write_source(
        user_dir,
        "broken_base",
        """
        from .base import Base

        class BrokenBaseSource(Base):
            pass
        """,
        **{"base.py": "class Base(:\n"},
    )
    write_source(
        user_dir,
        "self_alias",
        """
        Base = Base

        class SelfAliasSource(Base):
            pass
        """,
    )
    names = set(discover(ConnectorKind.SOURCE))
    assert not names & {"cyclic", "broken_base", "self_alias"}
    assert "dummy" in names
