"""The shared model of SQL destinations: column types, their widening, names, dispositions."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from bizon_core.destination.sql import (
    ColumnType,
    SqlDestinationConfig,
    WriteDisposition,
    check_identifier,
    infer_columns,
    table_name_for,
    value_type,
    widen,
)
from bizon_core.source.config import SourceSyncModes

T = ColumnType


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (True, T.BOOLEAN),
        (3, T.BIGINT),
        (2**70, T.TEXT),
        (1.5, T.DOUBLE),
        ("2026-01-01T00:00:00+00:00", T.TIMESTAMP),
        ("2026-01-01 10:00:00.123Z", T.TIMESTAMP),
        ("2026-13-01T00:00:00", T.TEXT),
        ("hello", T.TEXT),
        (datetime(2026, 1, 1, tzinfo=UTC), T.TIMESTAMP),
        ({"a": 1}, T.JSON),
        ([1, 2], T.JSON),
        ({1, 2}, T.JSON),
        (Decimal("1.5"), T.TEXT),
    ],
)
def test_value_types(value, expected):
    assert value_type(value) == expected


@pytest.mark.parametrize(
    ("current", "new", "expected"),
    [
        (None, T.BIGINT, T.BIGINT),
        (T.BIGINT, None, T.BIGINT),
        (T.BIGINT, T.DOUBLE, T.DOUBLE),
        (T.DOUBLE, T.BIGINT, T.DOUBLE),
        (T.BIGINT, T.TEXT, T.TEXT),
        (T.TIMESTAMP, T.TEXT, T.TEXT),
        (T.BOOLEAN, T.BIGINT, T.TEXT),
        (T.TEXT, T.JSON, T.JSON),
        (T.JSON, T.BIGINT, T.JSON),
    ],
)
def test_widening_holds_both_types(current, new, expected):
    assert widen(current, new) == expected


def test_inferred_columns_keep_first_appearance_order_and_leave_all_null_fields_open():
    rows = [
        {"a": 1, "b": "2026-01-01T00:00:00+00:00", "c": None},
        {"a": 2.5, "b": "not a time", "d": {"x": 1}, "c": None},
    ]
    assert infer_columns(rows) == {"a": T.DOUBLE, "b": T.TEXT, "c": None, "d": T.JSON}


def test_identifiers_and_table_names():
    assert check_identifier("users_2", "table") == "users_2"
    for bad in ("2users", "users; drop", 'a"b', "x" * 64, ""):
        with pytest.raises(ValueError, match="not a valid identifier"):
            check_identifier(bad, "table")
    assert table_name_for("user-events", None) == "user_events"
    assert table_name_for("2024", None) == "_2024"
    assert table_name_for("users", "people") == "people"


def test_bizon_table_names_are_refused_in_config():
    with pytest.raises(ValueError, match="bizon's own"):
        SqlDestinationConfig.model_validate({"table": "_bizon_loads"})


def test_dispositions_follow_the_sync_mode_unless_configured():
    assert (
        WriteDisposition.for_sync_mode(SourceSyncModes.FULL_REFRESH, None)
        is WriteDisposition.REPLACE
    )
    assert (
        WriteDisposition.for_sync_mode(SourceSyncModes.INCREMENTAL, None) is WriteDisposition.MERGE
    )
    configured = WriteDisposition.APPEND
    assert WriteDisposition.for_sync_mode(SourceSyncModes.INCREMENTAL, configured) is configured
