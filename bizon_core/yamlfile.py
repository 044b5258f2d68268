"""Reading a config YAML that may be broken or hostile, with one-line errors naming the file.

What `read_yaml` refuses, each as a `ConfigError` starting with the file's path:

- a file that is not UTF-8 text (UTF-16, binary); a UTF-8 byte-order mark is fine;
- a file larger than `MAX_BYTES`;
- malformed YAML, with its line and column;
- a mapping with the same key twice (`name:` twice is a typo, not an override);
- nesting deeper than `MAX_DEPTH` levels;
- anchors and aliases that expand to more than `MAX_VALUES` values (an "alias bomb"),
  or an alias inside the node it refers to. Anchors, aliases and `<<:` merges within
  those bounds are read as YAML defines them.

Only YAML's safe types are built (no Python objects).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bizon_core.errors import ConfigError

#: Largest config file read, in bytes.
MAX_BYTES = 10 * 1024 * 1024
#: Deepest nesting of mappings and sequences, aliases expanded.
MAX_DEPTH = 64
#: Most values (mappings, sequences, scalars and keys) in a document, aliases expanded.
MAX_VALUES = 100_000

_MERGE_TAG = "tag:yaml.org,2002:merge"


def read_yaml(path: Path) -> Any:
    """The single YAML document in `path`, as plain Python values."""
    text = _read_text(path)
    loader = _BoundedLoader(text, path)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_node_graph(path, node)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        context = getattr(exc, "context", None)
        if context and not context.startswith("while "):  # "expected a single document"
            problem = f"{context}, {problem}"
        raise ConfigError(f"{path}: malformed YAML{where}: {problem}") from None
    finally:
        loader.dispose()


def _read_text(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read pipeline config: {exc.strerror or exc}") from exc
    if len(data) > MAX_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_BYTES // (1024 * 1024)} MB, not a config")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ConfigError(f"{path}: the file is UTF-16 text, not UTF-8; save it as UTF-8")
    if b"\x00" in data:
        raise ConfigError(f"{path}: not a text file (it contains NUL bytes)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "save it as UTF-8"
        ) from None


class _BoundedLoader(yaml.SafeLoader):
    """`SafeLoader` that stops composing beyond `MAX_DEPTH` levels, before Python's own limit."""

    def __init__(self, stream: str, path: Path):
        super().__init__(stream)
        self._path = path
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self._depth >= MAX_DEPTH:
            mark = self.peek_event().start_mark
            raise ConfigError(
                f"{self._path}: nested deeper than {MAX_DEPTH} levels "
                f"(line {mark.line + 1}, column {mark.column + 1})"
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _check_node_graph(path: Path, root: yaml.Node) -> None:
    """Refuse duplicate keys, and bound the document's size and depth with aliases expanded.

    Aliases make the composed document a graph whose nodes are shared: each node is
    visited once and its expanded size and depth are computed from its children's, so
    an alias bomb is measured without being expanded.
    """
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        children = _children(node)
        if children_done:
            on_path.discard(id(node))
            size[id(node)] = 1 + sum(size[id(c)] for c in children)
            depth[id(node)] = 1 + max((depth[id(c)] for c in children), default=0)
            line = node.start_mark.line + 1
            if size[id(node)] > MAX_VALUES:
                raise ConfigError(
                    f"{path}: the value at line {line} expands to more than {MAX_VALUES:,} "
                    "values through aliases; write it out or use fewer aliases"
                )
            if depth[id(node)] > MAX_DEPTH:
                raise ConfigError(
                    f"{path}: the value at line {line} is nested deeper than {MAX_DEPTH} "
                    "levels through aliases"
                )
            continue
        if id(node) in size:
            continue
        if id(node) in on_path:
            raise ConfigError(
                f"{path}: the node at line {node.start_mark.line + 1} contains an alias of itself"
            )
        if isinstance(node, yaml.MappingNode):
            _refuse_duplicate_keys(path, node)
        on_path.add(id(node))
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in size)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _refuse_duplicate_keys(path: Path, node: yaml.MappingNode) -> None:
    seen: dict[tuple[str, str], yaml.ScalarNode] = {}
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == _MERGE_TAG:
            continue
        first = seen.setdefault((key.tag, key.value), key)
        if first is not key:
            raise ConfigError(
                f"{path}: duplicate key '{key.value}' at line {key.start_mark.line + 1} "
                f"(first at line {first.start_mark.line + 1})"
            )
