"""Checks of a schedule's cron expression and time zone, as strict as the orchestrators using them.

A cron expression has five fields (minute, hour, day of month, month, day of week); each
is a comma list of `*`, a value, a range `a-b`, any of them with a `/step`; months and
days of week may be named (`jan`, `mon`), day of week 7 is Sunday, `?` stands for `*` in
the day fields, `L` is the last day of the month and `mon#2` the second Monday. The
macros `@hourly`, `@daily`, `@midnight`, `@weekly`, `@monthly`, `@yearly`, `@annually`
are accepted too. Everything accepted here Dagster accepts as well.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

MACROS = frozenset(
    {"@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually"}
)

_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int]
    special: frozenset[str] = frozenset()


_FIELDS = (
    _Field("minute", 0, 59, {}),
    _Field("hour", 0, 23, {}),
    _Field("day of month", 1, 31, {}, frozenset({"?", "l"})),
    _Field("month", 1, 12, {name: i + 1 for i, name in enumerate(_MONTHS)}),
    _Field("day of week", 0, 7, {name: i for i, name in enumerate(_DAYS)}, frozenset({"?"})),
)
_ITEM = re.compile(r"^(?P<base>\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(?P<step>\d+))?$")


def check_cron(expression: str) -> str:
    """The expression if it is a valid 5-field cron expression; ValueError saying why not."""
    fields = expression.split()
    if len(fields) == 1 and fields[0].lower() in MACROS:
        return expression
    if len(fields) != 5:
        raise ValueError(
            f"{expression!r} is not a cron expression: it needs 5 fields "
            "(minute hour day-of-month month day-of-week), it has "
            f"{len(fields)}"
        )
    values = []
    for text, spec in zip(fields, _FIELDS, strict=True):
        try:
            values.append(_check_field(text.lower(), spec))
        except ValueError as exc:
            raise ValueError(f"{expression!r} is not a valid cron expression: {exc}") from None
    days, months = values[2], values[3]
    if months == {2} and days is not None and days <= {30, 31}:
        raise ValueError(f"{expression!r} never runs: February has no day 30 or 31")
    return expression


def check_timezone(name: str) -> str:
    """The name if it is a known IANA time zone (e.g. `Europe/Paris`); ValueError if not."""
    if name in {"UTC", "utc"}:
        return name
    try:
        ZoneInfo(name)
    except (ValueError, OSError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(f"{name!r} is not a known IANA time zone (e.g. Europe/Paris)") from None
    return name


def _check_field(text: str, spec: _Field) -> set[int] | None:
    """The values a field lists, None for any (`*`, `?`, a step, `L`, `#`)."""
    listed: set[int] | None = set()
    for item in text.split(","):
        if item in spec.special:
            listed = None
            continue
        if spec.name == "day of week" and "#" in item:
            day, _, nth = item.partition("#")
            _value(day, spec)
            if not nth.isdigit() or not 1 <= int(nth) <= 5:
                raise ValueError(f"{spec.name} {item!r}: the week after # is 1 to 5")
            listed = None
            continue
        match = _ITEM.match(item)
        if match is None:
            raise ValueError(f"{spec.name} {item!r} is not a value, range or step")
        step = match["step"]
        if step is not None and int(step) == 0:
            raise ValueError(f"{spec.name} {item!r}: a step must be at least 1")
        base = match["base"]
        if base == "*":
            listed = None
            continue
        low, _, high = base.partition("-")
        first = _value(low, spec)
        last = _value(high, spec) if high else first
        if last < first:
            raise ValueError(f"{spec.name} {item!r}: the range is reversed")
        if listed is not None and step is None:
            listed.update(range(first, last + 1))
        else:
            listed = None
    return listed


def _value(text: str, spec: _Field) -> int:
    if text in spec.names:
        return spec.names[text]
    if not text.isdigit():
        raise ValueError(f"{spec.name} {text!r} is not a number")
    value = int(text)
    if not spec.low <= value <= spec.high:
        raise ValueError(f"{spec.name} {value} is out of range {spec.low}-{spec.high}")
    return value
