"""What the `bizon` commands share: exit codes, stream selection, tables."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from bizon_core.config import Pipeline
from bizon_core.errors import ConfigError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def selected_streams(pipeline: Pipeline, requested: list[str] | None) -> list[str]:
    """The streams `--stream` names (all of the pipeline's without one)."""
    if not requested:
        return pipeline.streams
    unknown = [s for s in requested if s not in pipeline.streams]
    if unknown:
        raise ConfigError(
            f"--stream {unknown[0]}: not a stream of this pipeline; "
            f"its streams: {', '.join(pipeline.streams)}"
        )
    return requested


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print aligned columns, as `bizon source list` does."""
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=False)]
    for row in (headers, *rows):
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def write_output(text: str, output: Path | None, written: str) -> None:
    """`text` to `output`, saying `written` (what went there), or to stdout without one."""
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        print(f"wrote {written} to {output}")
