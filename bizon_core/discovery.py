"""Find connectors by their files, without importing them.

A connector directory is laid out like the built-in `connectors/`::

    <dir>/sources/<name>/src/source.py            a class extending AbstractSource
    <dir>/destinations/<name>/src/destination.py  a class extending AbstractDestination

Listing parses those files (AST) so that a connector whose dependencies are missing,
or whose import is slow or broken, is still listed. Only `load_*_class` imports, and
only the one connector asked for. Directories named in `BIZON_CONNECTORS_PATH`
(separated by `os.pathsep`) are searched before the built-in ones, so a user's
connector of the same name takes precedence.
"""

from __future__ import annotations

import ast
import importlib
import logging
import os
import sys
import types
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from bizon_core.errors import ConfigError, DiscoveryError

logger = logging.getLogger(__name__)

CONNECTORS_PATH_ENV = "BIZON_CONNECTORS_PATH"
_IMPORT_ROOT = "bizon_connectors"
_ENUM_BASES = {"Enum", "StrEnum", "IntEnum"}


class ConnectorKind(StrEnum):
    """The two kinds of connectors and the files that define them."""

    SOURCE = "source"
    DESTINATION = "destination"

    @property
    def folder(self) -> str:
        return f"{self.value}s"

    @property
    def base_classes(self) -> frozenset[str]:
        """Names of the SDK's base classes a connector class of this kind extends."""
        if self is ConnectorKind.SOURCE:
            return frozenset({"AbstractSource"})
        return frozenset({"AbstractDestination", "StagedSqlDestination"})


@dataclass(frozen=True)
class ConnectorInfo:
    """What discovery learns about a connector from its files alone."""

    kind: ConnectorKind
    name: str
    path: Path
    class_name: str
    docstring: str | None
    #: Stream names when `streams()` returns literals or an Enum's values, else None.
    streams: tuple[str, ...] | None = None
    #: Whether the class implements `get_records_after` (sources only).
    supports_incremental: bool = False


def builtin_connectors_dir() -> Path:
    """The connectors shipped with bizon (in the wheel, or beside the package in a checkout)."""
    package_dir = Path(__file__).resolve().parent
    packaged = package_dir / "_connectors"
    return packaged if packaged.is_dir() else package_dir.parent / "connectors"


def connector_dirs() -> list[Path]:
    """Directories searched for connectors, in order of precedence."""
    extra = [Path(p) for p in os.environ.get(CONNECTORS_PATH_ENV, "").split(os.pathsep) if p]
    return [*extra, builtin_connectors_dir()]


def discover(kind: ConnectorKind) -> dict[str, ConnectorInfo]:
    """All connectors of `kind`, by name, found by parsing their files."""
    found: dict[str, ConnectorInfo] = {}
    for root in connector_dirs():
        folder = root / kind.folder
        if not folder.is_dir():
            continue
        for connector_dir in sorted(folder.iterdir()):
            name = connector_dir.name
            path = connector_dir / "src" / f"{kind.value}.py"
            if name in found or not name.isidentifier() or not path.is_file():
                continue
            info = _inspect(kind, name, path)
            if info is not None:
                found[name] = info
    return dict(sorted(found.items()))


def get_connector(kind: ConnectorKind, name: str) -> ConnectorInfo:
    """One connector by name; `DiscoveryError` listing the available ones if unknown."""
    connectors = discover(kind)
    if name not in connectors:
        available = ", ".join(connectors) or "none"
        raise DiscoveryError(f"unknown {kind.value} '{name}'; available: {available}")
    return connectors[name]


def load_connector_class(info: ConnectorInfo) -> type:
    """Import the connector's module and return its class.

    The `src/` folder is imported as a package, so relative imports between its files work.
    """
    package_name = f"{_IMPORT_ROOT}.{info.kind.folder}.{info.name}"
    _ensure_package(_IMPORT_ROOT, None)
    _ensure_package(f"{_IMPORT_ROOT}.{info.kind.folder}", None)
    module_name = f"{package_name}.{info.kind.value}"
    loaded = sys.modules.get(module_name)
    if loaded is not None and getattr(loaded, "__file__", None) != str(info.path):
        # Another directory's connector of the same name was loaded before: forget it.
        for name in [
            m for m in sys.modules if m == package_name or m.startswith(package_name + ".")
        ]:
            del sys.modules[name]
    _ensure_package(package_name, info.path.parent)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError(
            f"{info.kind.value} '{info.name}' could not be imported from {info.path}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    return getattr(module, info.class_name)


def _ensure_package(name: str, path: Path | None) -> None:
    module = sys.modules.get(name)
    if module is None:
        module = types.ModuleType(name)
        module.__path__ = []
        sys.modules[name] = module
    if path is not None and str(path) not in module.__path__:
        module.__path__ = [str(path)]
        init = path / "__init__.py"
        module.__file__ = str(init) if init.is_file() else None


def _inspect(kind: ConnectorKind, name: str, path: Path) -> ConnectorInfo | None:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError, OSError) as exc:
        logger.warning("skipping %s '%s': cannot parse %s: %s", kind.value, name, path, exc)
        return None
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    candidates = [c for c in classes.values() if _extends(c, kind.base_classes, classes)]
    if not candidates:
        bases = " or ".join(sorted(kind.base_classes))
        logger.warning("skipping %s '%s': no class extends %s", kind.value, name, bases)
        return None
    # The connector class is the most derived one: the last that no other candidate extends.
    parents = {_base_name(b) for c in candidates for b in c.bases}
    leaves = [c for c in candidates if c.name not in parents] or candidates
    cls = leaves[-1]
    lineage = _lineage(cls, classes)
    return ConnectorInfo(
        kind=kind,
        name=name,
        path=path,
        class_name=cls.name,
        docstring=ast.get_docstring(cls),
        streams=_static_streams(lineage, _enums(path.parent)),
        supports_incremental=any(_defines(c, "get_records_after") for c in lineage),
    )


def _base_name(base: ast.expr) -> str | None:
    if isinstance(base, ast.Name):
        return base.id
    if isinstance(base, ast.Attribute):
        return base.attr
    return None


def _extends(cls: ast.ClassDef, targets: frozenset[str], classes: dict[str, ast.ClassDef]) -> bool:
    return any(_base_name(b) in targets for c in _lineage(cls, classes) for b in c.bases)


def _lineage(cls: ast.ClassDef, classes: dict[str, ast.ClassDef]) -> list[ast.ClassDef]:
    """`cls` and its ancestors defined in the same file, nearest first."""
    lineage, queue = [], [cls]
    while queue:
        current = queue.pop(0)
        if current in lineage:
            continue
        lineage.append(current)
        queue.extend(classes[n] for b in current.bases if (n := _base_name(b)) in classes)
    return lineage


def _defines(cls: ast.ClassDef, method: str) -> bool:
    return any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == method
        for node in cls.body
    )


def _enums(src_dir: Path) -> dict[str, dict[str, str]]:
    """Enum classes with string values declared in the connector's `src/` files."""
    enums: dict[str, dict[str, str]] = {}
    for file in sorted(src_dir.glob("*.py")):
        try:
            tree = ast.parse(file.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and any(
                _base_name(b) in _ENUM_BASES for b in node.bases
            ):
                members = {
                    stmt.targets[0].id: stmt.value.value
                    for stmt in node.body
                    if isinstance(stmt, ast.Assign)
                    and isinstance(stmt.targets[0], ast.Name)
                    and isinstance(stmt.value, ast.Constant)
                    and isinstance(stmt.value.value, str)
                }
                if members:
                    enums[node.name] = members
    return enums


def _static_streams(
    lineage: list[ast.ClassDef], enums: dict[str, dict[str, str]]
) -> tuple[str, ...] | None:
    for cls in lineage:
        for node in cls.body:
            if isinstance(node, ast.FunctionDef) and node.name == "streams":
                returns = [n for n in ast.walk(node) if isinstance(n, ast.Return)]
                if len(returns) == 1 and returns[0].value is not None:
                    return _evaluate_streams(returns[0].value, enums)
                return None
    return None


def _evaluate_streams(expr: ast.expr, enums: dict[str, dict[str, str]]) -> tuple[str, ...] | None:
    # ["a", "b"], ("a", MyStreams.B), [MyStreams.A.value]
    if isinstance(expr, ast.List) and len(expr.elts) == 1 and isinstance(expr.elts[0], ast.Starred):
        return _enum_values(expr.elts[0].value, enums)
    if isinstance(expr, ast.List | ast.Tuple | ast.Set):
        values = [_evaluate_member(e, enums) for e in expr.elts]
        return None if None in values else tuple(values)  # type: ignore[arg-type]
    # list(MyStreams), [*MyStreams]
    if isinstance(expr, ast.Call) and _base_name(expr.func) == "list" and len(expr.args) == 1:
        return _enum_values(expr.args[0], enums)
    # [s.value for s in MyStreams], [s for s in MyStreams]
    if isinstance(expr, ast.ListComp) and len(expr.generators) == 1:
        generator = expr.generators[0]
        if not generator.ifs:
            return _enum_values(generator.iter, enums)
    return None


def _evaluate_member(expr: ast.expr, enums: dict[str, dict[str, str]]) -> str | None:
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return expr.value
    if isinstance(expr, ast.Attribute) and expr.attr == "value":
        return _evaluate_member(expr.value, enums)
    if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name):
        return enums.get(expr.value.id, {}).get(expr.attr)
    return None


def _enum_values(expr: ast.expr, enums: dict[str, dict[str, str]]) -> tuple[str, ...] | None:
    if isinstance(expr, ast.Name) and expr.id in enums:
        return tuple(enums[expr.id].values())
    return None
