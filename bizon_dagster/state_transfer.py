"""Moving streams' cursors between the CLI's state store and a Dagster instance.

`bizon state export PIPELINE.yml -o cursors.json` writes the CLI's cursors; then
`python -m bizon_dagster state import PIPELINE.yml cursors.json` records each as a
materialization of its stream's asset (without a run), which the asset's next run reads
as its cursor: a team adopting Dagster does not reload what the CLI already loaded.
`python -m bizon_dagster state export` writes the Dagster cursors the other way.
"""

from __future__ import annotations

from typing import Any

from dagster import AssetKey, AssetMaterialization, DagsterInstance

from bizon_core.config import Pipeline
from bizon_core.sync.state_document import runs_of, state_document
from bizon_dagster.assets import stream_specs
from bizon_dagster.state import read_success, success_metadata
from bizon_dagster.translator import BizonTranslator


def _keys(pipeline: Pipeline, translator: BizonTranslator | None) -> dict[str, AssetKey]:
    specs = stream_specs(pipeline, translator or BizonTranslator())
    return {stream: spec.key for stream, spec in specs.items()}


def import_state(
    instance: DagsterInstance,
    pipeline: Pipeline,
    document: Any,
    where: str = "the export",
    translator: BizonTranslator | None = None,
) -> dict[str, AssetKey]:
    """Record each stream's exported cursor as a materialization of its asset; returns
    the assets by stream. `ConfigError` names what in `document` does not fit."""
    runs = runs_of(document, pipeline, where)
    keys = _keys(pipeline, translator)
    for stream, run in runs.items():
        instance.report_runless_asset_event(
            AssetMaterialization(
                asset_key=keys[stream],
                description=f"cursor imported from {where}",
                metadata={
                    **success_metadata(run),
                    "bizon/records": run.records,
                    "bizon/pages": run.pages,
                },
            )
        )
    return {stream: keys[stream] for stream in runs}


def export_state(
    instance: DagsterInstance, pipeline: Pipeline, translator: BizonTranslator | None = None
) -> dict[str, Any]:
    """The streams' cursors in the instance, as `bizon state export` writes them."""
    runs = {
        stream: read_success(instance, key) for stream, key in _keys(pipeline, translator).items()
    }
    return state_document(pipeline, {s: run for s, run in runs.items() if run is not None})
