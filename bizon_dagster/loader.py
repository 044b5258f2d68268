"""`Definitions` built from a directory of pipeline YAMLs."""

from __future__ import annotations

import os
from pathlib import Path

from dagster import (
    AssetKey,
    AssetSelection,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    Definitions,
)

from bizon_core.config import Pipeline, load_pipeline
from bizon_core.discovery import builtin_connectors_dir
from bizon_core.errors import ConfigError
from bizon_dagster.assets import bizon_stream_assets, op_name, stream_specs
from bizon_dagster.automation import new_data_sensor, pipeline_job, pipeline_schedule
from bizon_dagster.translator import BizonTranslator

PIPELINES_DIR_ENV = "BIZON_PIPELINES_DIR"


def default_pipelines_dir() -> Path:
    """`$BIZON_PIPELINES_DIR`, else the dummy source's example configs."""
    configured = os.environ.get(PIPELINES_DIR_ENV)
    if configured:
        return Path(configured)
    return builtin_connectors_dir() / "sources" / "dummy" / "config"


def pipeline_files(directory: Path) -> list[Path]:
    """The pipeline YAMLs of a directory, sorted."""
    if not directory.is_dir():
        raise ConfigError(f"{directory}: pipelines directory not found ({PIPELINES_DIR_ENV})")
    return sorted(p for p in directory.iterdir() if p.suffix in {".yml", ".yaml"} and p.is_file())


def build_definitions(
    directory: str | Path | None = None, *, translator: BizonTranslator | None = None
) -> Definitions:
    """Assets, checks, jobs, schedules and sensors for every pipeline YAML in `directory`.

    A config that does not load raises `ConfigError` naming its file and field; two
    pipelines with one name, or giving one asset key, raise naming both files.
    """
    directory = Path(directory) if directory is not None else default_pipelines_dir()
    translator = translator or BizonTranslator()
    owners: dict[AssetKey, Path] = {}
    names: dict[str, Path] = {}
    definitions = []
    for path in pipeline_files(directory):
        pipeline = load_pipeline(path)
        if pipeline.name in names:
            raise ConfigError(
                f"{path}: name: pipeline {pipeline.name} is also defined by "
                f"{names[pipeline.name]}; pipeline names must be unique"
            )
        names[pipeline.name] = path
        for spec in stream_specs(pipeline, translator).values():
            if spec.key in owners:
                raise ConfigError(
                    f"{path}: asset {spec.key.to_user_string()} is also produced by "
                    f"{owners[spec.key]}; give one of them an asset_key_prefix"
                )
            owners[spec.key] = path
        definitions.append(pipeline_definitions(pipeline, translator=translator))
    return Definitions.merge(*definitions) if definitions else Definitions()


def pipeline_definitions(
    pipeline: str | Path | Pipeline,
    *,
    translator: BizonTranslator | None = None,
    per_stream: bool | None = None,
) -> Definitions:
    """One pipeline's assets (one step, or one per stream), checks, job, schedule, new-data
    sensor, and the sensor its automation conditions need."""
    if not isinstance(pipeline, Pipeline):
        pipeline = load_pipeline(pipeline)
    assets = bizon_stream_assets(pipeline, translator=translator, per_stream=per_stream)
    keys = {
        stream: spec.key
        for stream, spec in stream_specs(pipeline, translator or BizonTranslator()).items()
    }
    job = pipeline_job(pipeline, assets)
    schedules = [s for s in [pipeline_schedule(pipeline, job)] if s is not None]
    sensors = [s for s in [new_data_sensor(pipeline, keys, job)] if s is not None]
    if pipeline.config.automation is not None:
        sensors.append(
            AutomationConditionSensorDefinition(
                f"{op_name(pipeline)}_automation",
                target=AssetSelection.assets(*keys.values()),
                default_status=DefaultSensorStatus.RUNNING,
            )
        )
    return Definitions(assets=assets, jobs=[job], schedules=schedules, sensors=sensors)
