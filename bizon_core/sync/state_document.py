"""A pipeline's cursors as a JSON document, to move them between state stores.

`bizon state export` writes one; `bizon state import` reads one into the CLI's store, and
`bizon_dagster.import_state` into a Dagster instance. Only committed runs travel: a
checkpoint belongs to the store (and the destination) that wrote it.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from bizon_core.config import Pipeline
from bizon_core.errors import ConfigError
from bizon_core.source.config import SourceSyncModes
from bizon_core.sync.state import StateStore, SuccessfulRun

FORMAT = "bizon-state/1"


def export_state(pipeline: Pipeline, store: StateStore, streams: list[str]) -> dict[str, Any]:
    """The document of the last successful run of each of `streams` that has one."""
    runs = {stream: store.last_success(pipeline.stream_key(stream)) for stream in streams}
    return state_document(pipeline, {s: run for s, run in runs.items() if run is not None})


def state_document(pipeline: Pipeline, runs: dict[str, SuccessfulRun]) -> dict[str, Any]:
    """The document of `runs`, the last successful run of each stream."""
    return {
        "format": FORMAT,
        "pipeline": pipeline.name,
        "source": pipeline.source_info.name,
        "streams": {
            stream: {
                "run_id": run.run_id,
                "started_at": run.started_at.isoformat(),
                "finished_at": run.finished_at.isoformat(),
                "sync_mode": run.sync_mode.value,
                "records": run.records,
                "pages": run.pages,
                "cursor_field": run.cursor_field,
                "state": run.state,
            }
            for stream, run in runs.items()
        },
    }


def read_state_document(path: Path) -> Any:
    """The JSON document at `path`; `ConfigError` naming the file if it cannot be read."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from None


def runs_of(document: Any, pipeline: Pipeline, where: str) -> dict[str, SuccessfulRun]:
    """The runs of an exported document, checked against `pipeline`; `ConfigError` names
    what does not fit (`where` is the document's file)."""
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ConfigError(f"{where}: not a bizon state export (format {FORMAT})")
    for field, expected in (("pipeline", pipeline.name), ("source", pipeline.source_info.name)):
        if document.get(field) != expected:
            raise ConfigError(
                f"{where}: exported from {field} '{document.get(field)}', not '{expected}'"
            )
    runs = {}
    for stream, run in (document.get("streams") or {}).items():
        if stream not in pipeline.streams:
            raise ConfigError(
                f"{where}: streams.{stream}: not a stream of pipeline '{pipeline.name}' "
                f"(its streams: {', '.join(pipeline.streams)})"
            )
        try:
            runs[stream] = SuccessfulRun(
                run_id=str(run["run_id"]),
                started_at=datetime.fromisoformat(run["started_at"]),
                finished_at=datetime.fromisoformat(run["finished_at"]),
                sync_mode=SourceSyncModes(run["sync_mode"]),
                records=int(run["records"]),
                pages=int(run["pages"]),
                cursor_field=run.get("cursor_field"),
                state=dict(run.get("state") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: streams.{stream}: {type(exc).__name__}: {exc}") from None
    return runs
