"""COPY's text format of a batch of records, a column at a time."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from itertools import repeat
from typing import Any

import orjson

from bizon_core.destination.sql import ColumnType, all_timestamps, value_type, widen
from bizon_core.source.models import SourceRecord

_NULL = "\\N"
_INT64 = 2**63
_CHUNK_ROWS = 5_000


class Misfit(Exception):
    """A value the column's current type cannot hold: the batch is typed again."""


def format_batch(
    pages: list[tuple[Sequence[SourceRecord], str]],
    columns: list[tuple[str, ColumnType | None]],
    known: frozenset[str],
    middle: str,
    first_row: int,
) -> Iterator[bytes]:
    """COPY text of the records, in chunks; `Misfit` on a field or value not fitting.

    `middle` is the text of the columns shared by every row (run id, batch); rows are
    numbered from `first_row`.
    Chunks are formatted a column at a time: a column's values are checked at once by
    C-level operations (their types, a join), and only an odd column goes value by value.
    """
    records: list[SourceRecord] = []
    extracted: list[str] = []
    for page, extracted_at in pages:
        records.extend(page)
        extracted.extend(repeat(extracted_at, len(page)))
    for start in range(0, len(records), _CHUNK_ROWS):
        chunk = records[start : start + _CHUNK_ROWS]
        datas = [record.data for record in chunk]
        if not set().union(*datas) <= known:
            raise Misfit
        table: list[Iterable[str]] = [
            _text_column([record.id for record in chunk]),
            extracted[start : start + _CHUNK_ROWS],
            repeat(middle),
            map(str, range(first_row + start, first_row + start + len(chunk))),
        ]
        for field, kind in columns:
            table.append(_COLUMN_FORMATTERS[kind]([data.get(field) for data in datas]))
        text = "\n".join(map("\t".join, zip(*table, strict=False))) + "\n"
        try:
            yield text.encode()
        except UnicodeEncodeError:  # lone surrogates: PostgreSQL takes only valid UTF-8
            yield text.encode(errors="replace")


def escape(text: str) -> str:
    if text.isprintable() and "\\" not in text:
        return text
    if "\x00" in text:
        text = text.replace("\x00", "")  # PostgreSQL text cannot hold NUL
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


def _float(value: float) -> str:
    if value - value == 0:
        return repr(value)
    return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")


def _float_text(value: float) -> str:
    text = _float(value)
    return text[:-2] if text.endswith(".0") else text  # as PostgreSQL's double::text


def _is_timestamp(text: str) -> bool:
    return all_timestamps([text])


def _json(value: Any) -> str:
    try:
        text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str).decode()
    except TypeError:  # integers beyond 64 bits, lone surrogates
        text = json.dumps(_plain(value), ensure_ascii=False)
    if "\\u0000" in text:  # jsonb cannot hold NUL either
        text = json.dumps(_plain(value), ensure_ascii=False)
    return text.replace("\\", "\\\\") if "\\" in text else text


def _plain(value: Any) -> Any:
    """`value` with only what jsonb takes: str keys, finite numbers, text without NUL."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            value = value.encode(errors="replace").decode()
        return value.replace("\x00", "")
    if isinstance(value, bool | int) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(_plain(k)) if k is not None else "null": _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return _plain(str(value))


def _convert(target: ColumnType, value: Any) -> str:
    """COPY text of a value whose type widens into `target`; `Misfit` if it does not."""
    kind = value_type(value)
    if widen(target, kind) != target:
        raise Misfit
    if target is ColumnType.JSON:
        return _json(value)
    if kind is ColumnType.BOOLEAN:
        if target is ColumnType.TEXT:
            return "true" if value else "false"
        return "t" if value else "f"
    if kind is ColumnType.BIGINT:
        return str(int(value))
    if kind is ColumnType.DOUBLE:
        return _float_text(float(value)) if target is ColumnType.TEXT else _float(float(value))
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, int):  # beyond 64 bits: text
        return str(int(value))
    return escape(str(value))


def _text(value: Any) -> str:
    if type(value) is str:
        if value.isprintable() and "\\" not in value:
            return value
        return escape(value)
    return _convert(ColumnType.TEXT, value)


def _bigint(value: Any) -> str:
    if type(value) is int and -_INT64 <= value < _INT64:
        return str(value)
    return _convert(ColumnType.BIGINT, value)


def _double(value: Any) -> str:
    if type(value) is float and value - value == 0:
        return repr(value)
    return _convert(ColumnType.DOUBLE, value)


def _boolean(value: Any) -> str:
    if value is True:
        return "t"
    if value is False:
        return "f"
    return _convert(ColumnType.BOOLEAN, value)


def _timestamp(value: Any) -> str:
    if type(value) is str and _is_timestamp(value):
        return value
    return _convert(ColumnType.TIMESTAMP, value)


def _each(values: list[Any], format: Callable[[Any], str]) -> list[str]:
    null = _NULL
    return [null if value is None else format(value) for value in values]


def _present(values: list[Any], types: set[type]) -> list[Any]:
    return [value for value in values if value is not None] if _NONE in types else values


def _text_column(values: list[Any]) -> list[str]:
    types = set(map(type, values))
    if types <= _STR_OR_NONE:
        joined = "".join(_present(values, types))
        if joined.isprintable() and "\\" not in joined:  # nothing to escape
            return [_NULL if value is None else value for value in values]
    return _each(values, _text)


def _bigint_column(values: list[Any]) -> list[str]:
    types = set(map(type, values))
    if types <= _INT_OR_NONE:
        present = _present(values, types)
        if not present or (min(present) >= -_INT64 and max(present) < _INT64):
            return [_NULL if value is None else str(value) for value in values]
    return _each(values, _bigint)


def _double_column(values: list[Any]) -> list[str]:
    types = set(map(type, values))
    if types <= _FLOAT_OR_NONE and math.isfinite(sum(_present(values, types))):
        return [_NULL if value is None else repr(value) for value in values]
    return _each(values, _double)


def _boolean_column(values: list[Any]) -> list[str]:
    if set(map(type, values)) <= _BOOL_OR_NONE:
        return list(map(_BOOLEAN_TEXT.__getitem__, values))
    return _each(values, _boolean)


def _timestamp_column(values: list[Any]) -> list[str]:
    types = set(map(type, values))
    if types <= _STR_OR_NONE and all_timestamps(_present(values, types)):
        return [_NULL if value is None else value for value in values]
    return _each(values, _timestamp)


def _json_column(values: list[Any]) -> list[str]:
    return _each(values, _json)


def _untyped_column(values: list[Any]) -> list[str]:
    if any(value is not None for value in values):
        raise Misfit
    return [_NULL] * len(values)


_NONE = type(None)
_STR_OR_NONE = frozenset((str, _NONE))
_INT_OR_NONE = frozenset((int, _NONE))
_FLOAT_OR_NONE = frozenset((float, _NONE))
_BOOL_OR_NONE = frozenset((bool, _NONE))
_BOOLEAN_TEXT = {True: "t", False: "f", None: _NULL}

_COLUMN_FORMATTERS: dict[ColumnType | None, Callable[[list[Any]], list[str]]] = {
    None: _untyped_column,
    ColumnType.TEXT: _text_column,
    ColumnType.BIGINT: _bigint_column,
    ColumnType.DOUBLE: _double_column,
    ColumnType.BOOLEAN: _boolean_column,
    ColumnType.TIMESTAMP: _timestamp_column,
    ColumnType.JSON: _json_column,
}
