"""Find connectors by their files, without importing them.

A connector directory is laid out like the built-in `connectors/`::

    <dir>/sources/<name>/src/source.py            a class extending AbstractSource
    <dir>/destinations/<name>/src/destination.py  a class extending AbstractDestination

Listing parses those files (AST) so that a connector whose dependencies are missing,
or whose import is slow or broken, is still listed. Names are followed through the
connector's own files (relative imports, absolute ones through the package it is loaded
as, aliases), so a class may extend a base of its own defined in another file, or
`AbstractSource` imported under another name. Only `load_*_class` imports, and
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
#: SDK bases whose streams are `endpoints`, incremental where an endpoint says so.
_REST_BASES = frozenset({"RestSource", "RestApiSource"})


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
            return frozenset({"AbstractSource", *_REST_BASES})
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
    #: Whether the streams are declared in a pipeline's config (`available_streams`).
    streams_in_config: bool = False


def builtin_connectors_dir() -> Path:
    """The connectors shipped with bizon (in the wheel, or beside the package in a checkout)."""
    package_dir = Path(__file__).resolve().parent
    packaged = package_dir / "_connectors"
    return packaged if packaged.is_dir() else package_dir.parent / "connectors"


def connector_dirs() -> list[Path]:
    """Directories searched for connectors, in order of precedence."""
    extra = [Path(p) for p in os.environ.get(CONNECTORS_PATH_ENV, "").split(os.pathsep) if p]
    return [*extra, builtin_connectors_dir()]


def discover(kind: ConnectorKind, dirs: list[Path] | None = None) -> dict[str, ConnectorInfo]:
    """All connectors of `kind`, by name, found by parsing their files (in `dirs`, by
    default `connector_dirs()`)."""
    found: dict[str, ConnectorInfo] = {}
    for root in connector_dirs() if dirs is None else dirs:
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
        parent, _, child = name.rpartition(".")
        if parent in sys.modules:  # so that `import a.b.c` then `a.b.c.X` works
            setattr(sys.modules[parent], child, module)
    if path is not None and str(path) not in module.__path__:
        module.__path__ = [str(path)]
        init = path / "__init__.py"
        module.__file__ = str(init) if init.is_file() else None


def _inspect(kind: ConnectorKind, name: str, path: Path) -> ConnectorInfo | None:
    package = _ConnectorPackage(path.parent, f"{_IMPORT_ROOT}.{kind.folder}.{name}")
    module = package.module(path)
    if module is None:
        reason = package.errors[path]
        logger.warning("skipping %s '%s': cannot parse %s: %s", kind.value, name, path, reason)
        return None
    candidates = [
        c for c in module.classes() if package.extends(_ClassRef(module, c), kind.base_classes)
    ]
    if not candidates:
        bases = " or ".join(sorted(kind.base_classes))
        logger.warning("skipping %s '%s': no class extends %s", kind.value, name, bases)
        return None
    # The connector class is the most derived one: the last that no other candidate extends.
    ancestors = {id(a.node) for c in candidates for a in package.lineage(_ClassRef(module, c))[1:]}
    leaves = [c for c in candidates if id(c) not in ancestors] or candidates
    cls = leaves[-1]
    lineage = [ref.node for ref in package.lineage(_ClassRef(module, cls))]
    in_config = any(_defines(c, "available_streams") for c in lineage)
    return ConnectorInfo(
        kind=kind,
        name=name,
        path=path,
        class_name=cls.name,
        docstring=ast.get_docstring(cls),
        streams=_static_streams(lineage, _enums(path.parent)),
        supports_incremental=any(_defines(c, "get_records_after") for c in lineage)
        or in_config
        or (
            package.extends(_ClassRef(module, cls), _REST_BASES) and _declares_incremental(lineage)
        ),
        streams_in_config=in_config,
    )


def _base_name(base: ast.expr) -> str | None:
    if isinstance(base, ast.Name):
        return base.id
    if isinstance(base, ast.Attribute):
        return base.attr
    return None


@dataclass(frozen=True)
class _ClassRef:
    """A class defined in one of the connector's own files."""

    module: _Module
    node: ast.ClassDef


@dataclass(frozen=True)
class _ModuleRef:
    """One of the connector's own modules, bound to a name (`from . import base`)."""

    module: _Module


@dataclass(frozen=True)
class _External:
    """Something outside the connector, by its dotted name as imported (or as written)."""

    name: str

    @property
    def final(self) -> str:
        return self.name.rpartition(".")[2]


_Ref = _ClassRef | _ModuleRef | _External


@dataclass(eq=False)
class _Module:
    """A parsed file of the connector and the names its top level binds."""

    path: Path
    tree: ast.Module

    def classes(self) -> list[ast.ClassDef]:
        return [node for node in self.tree.body if isinstance(node, ast.ClassDef)]

    def bindings(self) -> dict[str, ast.stmt]:
        """Name -> the last top-level statement binding it (class, import or `A = B`)."""
        bound: dict[str, ast.stmt] = {}
        for node in _top_level(self.tree.body):
            if isinstance(node, ast.ClassDef):
                bound[node.name] = node
            elif isinstance(node, ast.Import | ast.ImportFrom):
                for alias in node.names:
                    bound[alias.asname or alias.name.partition(".")[0]] = node
            elif (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Name | ast.Attribute)
            ):
                bound[node.targets[0].id] = node
        return bound


class _ConnectorPackage:
    """Resolves names across the files of one connector's `src/` folder, by parsing only.

    Imports are followed when they lead into the connector: relative ones, and absolute
    ones through the package the connector is imported as (`bizon_connectors.sources.x`);
    any other import is external and known by its dotted name.
    """

    _MAX_STEPS = 100  # import chains longer than this (or cyclic) are left unresolved

    def __init__(self, src_dir: Path, package_name: str):
        self.src_dir = src_dir
        self.package_name = package_name
        self._modules: dict[Path, _Module | None] = {}
        self._bindings: dict[Path, dict[str, ast.stmt]] = {}
        #: Why a file could not be parsed, by path.
        self.errors: dict[Path, Exception] = {}

    def module(self, path: Path) -> _Module | None:
        if path not in self._modules:
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            except (SyntaxError, UnicodeDecodeError, OSError, ValueError) as exc:
                self.errors[path] = exc
                self._modules[path] = None
            else:
                self._modules[path] = _Module(path, tree)
        return self._modules[path]

    def lineage(self, cls: _ClassRef) -> list[_ClassRef]:
        """`cls` and its ancestors defined in the connector's files, nearest first."""
        lineage: list[_ClassRef] = []
        queue = [cls]
        while queue:
            current = queue.pop(0)
            if any(current.node is seen.node for seen in lineage):
                continue
            lineage.append(current)
            queue.extend(
                base
                for b in current.node.bases
                if isinstance(base := self._resolve(current.module, b), _ClassRef)
            )
        return lineage

    def extends(self, cls: _ClassRef, targets: frozenset[str]) -> bool:
        """Whether `cls` or an ancestor of it in the connector has a base named in `targets`."""
        return any(
            isinstance(ref := self._resolve(c.module, b), _External) and ref.final in targets
            for c in self.lineage(cls)
            for b in c.node.bases
        )

    def _resolve(self, module: _Module, expr: ast.expr, steps: int = 0) -> _Ref | None:
        if steps > self._MAX_STEPS:
            return None
        if isinstance(expr, ast.Name):
            return self._resolve_name(module, expr.id, steps + 1)
        if isinstance(expr, ast.Attribute):
            owner = self._resolve(module, expr.value, steps + 1)
            if isinstance(owner, _ModuleRef):
                return self._attribute(owner.module, expr.attr, steps + 1)
            if isinstance(owner, _External):
                return self._dotted(f"{owner.name}.{expr.attr}", steps + 1)
        return None

    def _attribute(self, module: _Module, name: str, steps: int) -> _Ref | None:
        """`module.name`: a name bound in the module, else a submodule of a package."""
        if module.path.name == "__init__.py" and name not in self._bound(module):
            package = module.path.parent.relative_to(self.src_dir).parts
            submodule = self._module_file([*package, name])
            if submodule is not None:
                return self._module_ref(submodule)
        return self._resolve_name(module, name, steps)

    def _bound(self, module: _Module) -> dict[str, ast.stmt]:
        if module.path not in self._bindings:
            self._bindings[module.path] = module.bindings()
        return self._bindings[module.path]

    def _dotted(self, dotted: str, steps: int) -> _Ref | None:
        """A dotted name as imported: the connector's module or class it names, or external."""
        parts = self._internal_parts(dotted)
        if parts is None:
            return _External(dotted)
        target = self._module_file(parts)
        if target is not None:
            return self._module_ref(target)
        owner = self._module_file(parts[:-1]) if parts else None
        module = self.module(owner) if owner is not None else None
        if module is None:
            return _External(dotted)
        return self._resolve_name(module, parts[-1], steps + 1)

    def _resolve_name(self, module: _Module, name: str, steps: int) -> _Ref | None:
        if steps > self._MAX_STEPS:
            return None
        node = self._bound(module).get(name)
        if node is None:
            return _External(name)  # a builtin, a star import, ...: known by its name only
        if isinstance(node, ast.ClassDef):
            return _ClassRef(module, node)
        if isinstance(node, ast.Assign):
            return self._resolve(module, node.value, steps + 1)
        alias = next(a for a in node.names if (a.asname or a.name.partition(".")[0]) == name)
        if isinstance(node, ast.Import):
            return self._dotted(alias.name if alias.asname else name, steps + 1)
        parts = self._from_parts(module, node)
        if parts is None:  # outside the connector
            return _External(f"{node.module}.{alias.name}" if node.module else alias.name)
        submodule = self._module_file([*parts, alias.name])
        if submodule is not None:
            return self._module_ref(submodule)
        target = self._module_file(parts)
        inner = self.module(target) if target is not None else None
        if inner is None:
            return None
        return self._resolve_name(inner, alias.name, steps + 1)

    def _module_ref(self, path: Path) -> _ModuleRef | None:
        module = self.module(path)
        return _ModuleRef(module) if module is not None else None

    def _from_parts(self, module: _Module, node: ast.ImportFrom) -> list[str] | None:
        """The module of `from X import ...` as parts under `src/`, None when outside."""
        if node.level == 0:
            return self._internal_parts(node.module or "")
        package = module.path.parent.relative_to(self.src_dir).parts
        if node.level - 1 > len(package):
            return None
        base = list(package[: len(package) - (node.level - 1)])
        return [*base, *(node.module.split(".") if node.module else [])]

    def _internal_parts(self, dotted: str) -> list[str] | None:
        prefix = self.package_name.split(".")
        parts = dotted.split(".")
        return parts[len(prefix) :] if parts[: len(prefix)] == prefix else None

    def _module_file(self, parts: list[str] | None) -> Path | None:
        """The file of the module at `parts` under `src/` (a module or a package), if any."""
        if parts is None:
            return None
        base = self.src_dir.joinpath(*parts)
        for candidate in (
            base.with_name(base.name + ".py") if parts else None,
            base / "__init__.py",
        ):
            if candidate is not None and candidate.is_file():
                return candidate
        return None


def _top_level(body: list[ast.stmt]) -> list[ast.stmt]:
    """Statements run at import time: the body, and the branches of its `if`s and `try`s."""
    statements: list[ast.stmt] = []
    for node in body:
        statements.append(node)
        if isinstance(node, ast.If):
            statements.extend(_top_level(node.body + node.orelse))
        elif isinstance(node, ast.Try):
            handlers = [s for h in node.handlers for s in h.body]
            statements.extend(_top_level(node.body + handlers + node.orelse + node.finalbody))
    return statements


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
            if _assigns(node, "endpoints") and isinstance(node.value, ast.Dict):
                # A RestSource: its streams are the keys of `endpoints = {...}`.
                keys = [_evaluate_member(k, enums) if k else None for k in node.value.keys]
                return None if None in keys else tuple(keys)  # type: ignore[arg-type]
    return None


def _declares_incremental(lineage: list[ast.ClassDef]) -> bool:
    """Whether a RestSource's `endpoints` give an endpoint `incremental=...`."""
    return any(
        isinstance(keyword, ast.keyword) and keyword.arg == "incremental"
        for cls in lineage
        for node in cls.body
        if _assigns(node, "endpoints")
        for keyword in ast.walk(node)
    )


def _assigns(node: ast.stmt, name: str) -> bool:
    if isinstance(node, ast.Assign):
        return any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
    return (
        isinstance(node, ast.AnnAssign)
        and isinstance(node.target, ast.Name)
        and (node.target.id == name)
    )


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
