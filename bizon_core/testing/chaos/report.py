"""The table of a chaos run: per destination, path and mode, what the trials saw."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from bizon_core.testing.chaos.concurrency import ConcurrencyResult
from bizon_core.testing.chaos.trial import TrialResult

HEADERS = (
    "destination",
    "path",
    "mode",
    "trials",
    "failed",
    "recovered",
    "lost",
    "duplicated",
    "resumed",
    "left STARTED",
)


def summary_rows(results: Iterable[TrialResult]) -> list[tuple[str, ...]]:
    """One row per (destination, path, mode), in the order first seen."""
    groups: dict[tuple[str, str, str], list[TrialResult]] = {}
    for result in results:
        groups.setdefault((result.destination, result.path, result.mode), []).append(result)
    rows = []
    for (destination, path, mode), group in groups.items():
        codes: Counter[str] = Counter()
        for result in group:
            codes.update(result.exit_codes)
        rows.append(
            (
                destination,
                path,
                mode,
                str(len(group)),
                str(sum(not r.ok for r in group)),
                f"{sum(r.recovered for r in group)}/{len(group)}",
                str(sum(r.lost for r in group)),
                str(sum(r.duplicated for r in group)),
                f"{sum(r.resumed for r in group)}/{sum(r.checkpoints for r in group)}",
                str(sum(len(r.left_started) for r in group)),
                " ".join(f"{code}x{n}" for code, n in sorted(codes.items())),
            )
        )
    return rows


def format_table(rows: list[tuple[str, ...]], headers: tuple[str, ...]) -> str:
    """A Markdown table (readable as text too)."""
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=False)]

    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def trials_table(results: Iterable[TrialResult]) -> str:
    """The kill table: `recovered` is trials a rerun brought to success (the others' rows
    are not counted), `resumed` is reruns that resumed / reruns that had a checkpoint."""
    return format_table(summary_rows(results), (*HEADERS, "exit codes seen"))


def failure_lines(results: Iterable[TrialResult]) -> list[str]:
    """One line per failure, naming the trial's seed and its kills (to run it again)."""
    return [
        f"[{r.seed}] kills {' | '.join(r.kills)}: {failure}"
        for r in results
        for failure in r.failures
    ]


def concurrency_table(results: Iterable[ConcurrencyResult]) -> str:
    """One row per overlap scenario."""
    rows = [
        (
            r.destination,
            r.path,
            r.variant,
            " ".join(r.exit_codes),
            str(r.lost),
            str(r.duplicated),
            "ok" if r.ok else "FAILED",
            r.outcome[:110],
        )
        for r in results
    ]
    headers = ("destination", "path", "variant", "exit codes", "lost", "duplicated", "", "how")
    return format_table(rows, headers)
