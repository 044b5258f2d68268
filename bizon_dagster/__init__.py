"""bizon for Dagster: each stream of a pipeline is an asset whose cursor lives in Dagster.

from bizon_dagster import bizon_assets, build_definitions

defs = build_definitions("pipelines/")              # every pipeline YAML of a directory
defs = pipeline_definitions("pipelines/hubspot.yml")  # one pipeline's assets, job, sensors
assets = bizon_assets("pipelines/hubspot.yml")      # or one pipeline's multi_asset
"""

from bizon_dagster.assets import bizon_assets, bizon_stream_assets
from bizon_dagster.automation import new_data_sensor, pipeline_job, pipeline_schedule
from bizon_dagster.component import BizonComponent
from bizon_dagster.loader import build_definitions, pipeline_definitions
from bizon_dagster.state import DagsterStateStore
from bizon_dagster.translator import BizonStream, BizonTranslator

__all__ = [
    "BizonComponent",
    "BizonStream",
    "BizonTranslator",
    "DagsterStateStore",
    "bizon_assets",
    "bizon_stream_assets",
    "build_definitions",
    "new_data_sensor",
    "pipeline_definitions",
    "pipeline_job",
    "pipeline_schedule",
]
