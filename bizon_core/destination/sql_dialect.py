"""What a SQL destination's database adds to the shared load: its SQL dialect.

`StagedSqlDestination` (`bizon_core.destination.sql_load`) runs every step of a load
through a `SqlDialect`: running statements, transactions, type names, the catalog,
the few expressions databases write differently, and the names they allow. Statements
written by the shared load use `?` for parameters and quote every identifier.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any, ClassVar

from bizon_core.destination.sql import BATCH_COLUMN, BOOKKEEPING_COLUMNS, ROW_COLUMN, ColumnType

#: Column names a record field cannot take: its column gets a suffix (`_bizon_id_1`).
RESERVED_COLUMNS = (*BOOKKEEPING_COLUMNS, BATCH_COLUMN, ROW_COLUMN)


class SqlDialect(ABC):
    """One database's SQL, on one open connection."""

    #: DDL type of each column type.
    types: ClassVar[dict[ColumnType, str]]
    #: `information_schema.columns.data_type` -> column type, for the types above.
    catalog_types: ClassVar[dict[str, ColumnType]]
    #: Longest identifier, in bytes; None: no limit.
    max_identifier_bytes: ClassVar[int | None] = None
    #: Whether identifiers that differ only in case name the same column.
    case_insensitive: ClassVar[bool] = False

    @abstractmethod
    def execute(self, statement: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Run a statement (`?` parameters); its rows, if it returns any."""

    @abstractmethod
    def rowcount(self, statement: str, params: Sequence[Any] = ()) -> int:
        """Run a statement that writes rows (INSERT, CREATE TABLE AS); how many it wrote."""

    @abstractmethod
    def transaction(self) -> AbstractContextManager[None]:
        """A transaction: committed when the block ends, rolled back if it raises."""

    @abstractmethod
    def relation_kind(self, schema: str, name: str) -> bool | None:
        """Whether `schema.name` is a table (True), another relation (False) or missing."""

    @abstractmethod
    def columns(self, schema: str, name: str) -> list[tuple[str, str]]:
        """A table's columns, (name, `information_schema` data type), in table order."""

    @abstractmethod
    def timestamp_text(self, column: str) -> str:
        """A timestamp column as ISO 8601 text, like the strings it was loaded from."""

    @abstractmethod
    def to_json(self, column: str) -> str:
        """A column's values as the JSON type."""

    @abstractmethod
    def last_versions(self, columns: str, stage: str) -> str:
        """SELECT of `columns` from the last version of each record staged in `stage`.

        The last version is that of the highest batch, then the highest row.
        """

    def serialize(self, key: str) -> None:  # noqa: B027 - optional hook
        """Make concurrent transactions doing what this one does (keyed `key`) wait."""

    def prepare_commit(self) -> None:  # noqa: B027 - optional hook
        """Settings of the commit's transaction (memory for its sorts, say)."""

    def prepare_merge(self, table: str, stage: str, index: str) -> None:  # noqa: B027
        """Before a merge deletes from `table` the records staged in `stage`."""

    def quote(self, name: str) -> str:
        """An identifier, always quoted."""
        return '"' + name.replace('"', '""') + '"'

    @classmethod
    def fold(cls, name: str) -> str:
        """The form in which two names naming the same column are equal."""
        return name.lower() if cls.case_insensitive else name

    def type_of(self, kind: ColumnType | None) -> str:
        """The DDL type of a column type; all-null columns are text until a value comes."""
        return self.types[kind or ColumnType.TEXT]

    def convert(self, column: str, source: ColumnType | None, target: ColumnType) -> str:
        """An expression converting `column` from `source` (None: all null) to `target`."""
        if source == target or (source is None and target is ColumnType.TEXT):
            return column
        if source is ColumnType.TIMESTAMP:
            column = self.timestamp_text(column)
            if target is ColumnType.TEXT:
                return column
        if target is ColumnType.JSON and source is not None:
            return self.to_json(column)
        return f"CAST({column} AS {self.types[target]})"

    @classmethod
    def derived_name(cls, prefix: str, table: str) -> str:
        """`prefix + table` (an identifier), shortened with the table's hash if too long."""
        name, limit = prefix + table, cls.max_identifier_bytes
        if limit is None or len(name) <= limit:  # identifiers are ASCII (check_identifier)
            return name
        digest = hashlib.sha1(table.encode()).hexdigest()[:8]
        return f"{name[: limit - 9]}_{digest}"

    @classmethod
    def name_for(cls, text: str) -> str:
        """`text` as an identifier this database keeps whole (shortened with a hash if not)."""
        try:
            encoded = text.encode()
        except UnicodeEncodeError:
            encoded = text.encode(errors="replace")
            text = ""  # not a usable name as is
        limit = cls.max_identifier_bytes
        if text and "\x00" not in text and (limit is None or len(encoded) <= limit):
            return text
        if limit is None:
            return encoded.replace(b"\x00", b"").decode(errors="replace") or "_"
        digest = hashlib.sha1(encoded).hexdigest()[:8]
        head = encoded.replace(b"\x00", b"")[: limit - 9]
        return f"{head.decode(errors='ignore')}_{digest}"


class ColumnNames:
    """The column of each record field: its name, unless another column has that name.

    A field named like a bookkeeping column, or like a column another field took (in
    the database's sense: DuckDB ignores case), or too long for the database, gets a
    column of its own: the name with `_1`, `_2`... (or shortened with a hash). Nothing
    is refused. A field named like a column the table or staging already has takes it.
    """

    def __init__(self, name_for: Callable[[str], str], fold: Callable[[str], str]):
        self._name_for = name_for
        self._fold = fold
        #: Field -> column, in order of first appearance.
        self.columns: dict[Any, str] = {}
        #: The fields whose column has their very name.
        self.identity: set[Any] = set()
        #: Columns of the table and staging that hold record fields, as spelled there.
        self._existing: set[str] = set()
        #: Names taken, folded: the reserved ones, the table's and staging's, the fields'.
        self._taken: set[str] = {fold(name) for name in RESERVED_COLUMNS}

    def add_existing(self, names: Iterable[str]) -> None:
        """Columns a table already has: record fields of these names load into them."""
        for name in names:
            if not reserved_column(name, self._fold):
                self._existing.add(name)
            self._taken.add(self._fold(name))

    def column(self, field: Any) -> str:
        """The column of a record field, chosen the first time the field is seen."""
        column = self.columns.get(field)
        if column is not None:
            return column
        text = field if isinstance(field, str) else str(field)
        used = set(self.columns.values())
        number = 0
        while True:
            candidate = self._name_for(text if number == 0 else f"{text}_{number}")
            if candidate in self._existing:
                if candidate not in used:
                    break
            elif self._fold(candidate) not in self._taken:
                self._taken.add(self._fold(candidate))
                break
            number += 1
        self.columns[field] = candidate
        if candidate == field:
            self.identity.add(field)
        return candidate


def reserved_column(name: str, fold: Callable[[str], str]) -> bool:
    """Whether a column is one bizon adds, not a record field's."""
    return any(fold(name) == fold(reserved) for reserved in RESERVED_COLUMNS)
