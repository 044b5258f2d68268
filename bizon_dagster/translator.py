"""`BizonTranslator`: the one place to customise how a stream becomes a Dagster asset."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from dagster import (
    AssetKey,
    AssetSpec,
    AutomationCondition,
    BetaWarning,
    CodeReferencesMetadataValue,
    FreshnessPolicy,
    LocalFileCodeReference,
    MetadataValue,
    TableColumn,
    TableSchema,
)

from bizon_core.config import AutomationConfig, Pipeline
from bizon_core.errors import BizonError


@dataclass(frozen=True)
class BizonStream:
    """A stream of a pipeline, as the translator sees it."""

    pipeline: Pipeline
    stream: str

    @property
    def source(self) -> str:
        return self.pipeline.source_info.name

    @property
    def destination(self) -> str:
        return self.pipeline.destination_info.name

    @property
    def config_path(self) -> Path | None:
        return self.pipeline.path


class BizonTranslator:
    """Turns each stream of a pipeline into an `AssetSpec`; subclass to change the specs.

    The default key is `[*asset_key_prefix, source, stream]`; the group is `group:` of
    the YAML, else the pipeline's name (so that two pipelines' streams stand apart in the
    graph); owners, tags, the automation condition and the freshness policy come from
    the YAML; the kinds are `bizon` and the destination. The catalog knows the
    destination's table (and its columns, where the destination can tell without a run)
    and links the pipeline YAML
    as the asset's code. Example::

        class MyTranslator(BizonTranslator):
            def get_asset_spec(self, stream: BizonStream) -> AssetSpec:
                spec = super().get_asset_spec(stream)
                return spec.replace_attributes(owners=["team:data"], group_name="raw")
    """

    def get_asset_spec(self, stream: BizonStream) -> AssetSpec:
        """The spec of one stream's asset."""
        pipeline = stream.pipeline
        config = pipeline.source_configs[stream.stream]
        docstring = pipeline.source_info.docstring or f"The {stream.source} source."
        metadata = {
            "bizon/pipeline": pipeline.name,
            "bizon/source": stream.source,
            "bizon/stream": stream.stream,
            "bizon/sync_mode": config.sync_mode.value,
            "bizon/cursor_field": config.cursor_field or "",
            "bizon/destination": stream.destination,
        }
        if stream.config_path is not None:
            path = str(stream.config_path.resolve())
            metadata["bizon/config_path"] = MetadataValue.path(path)
            with warnings.catch_warnings():
                # Beta since Dagster 1.7 and what the UI's "code" link reads: a warning on
                # every definitions load would tell users nothing they can act on.
                warnings.simplefilter("ignore", BetaWarning)
                metadata["dagster/code_references"] = CodeReferencesMetadataValue(
                    code_references=[LocalFileCodeReference(file_path=path, label="pipeline YAML")]
                )
        metadata.update(destination_metadata(pipeline, stream.stream))
        return AssetSpec(
            key=AssetKey([*pipeline.config.asset_key_prefix, stream.source, stream.stream]),
            description=f"Stream `{stream.stream}` of source `{stream.source}`, loaded into "
            f"`{stream.destination}` by pipeline `{pipeline.name}`.\n\n{docstring}",
            group_name=pipeline.config.group or pipeline.name,
            kinds={"bizon", stream.destination},
            metadata=metadata,
            owners=pipeline.config.owners,
            tags={**pipeline.config.tags, "bizon/sync_mode": config.sync_mode.value},
            automation_condition=automation_condition(pipeline.config.automation),
            freshness_policy=freshness_policy(pipeline.config.checks.freshness),
        )


def destination_metadata(pipeline: Pipeline, stream: str) -> dict[str, object]:
    """`dagster/table_name` and, if the destination can tell cheaply, `dagster/column_schema`
    of the stream's table, known before any run."""
    try:
        destination = pipeline.destination(stream, run_id="definitions")
        table = destination.describe().get("table_name")
        columns = destination.existing_columns()
    except BizonError:
        return {}  # a destination that cannot say: the first materialization will
    metadata: dict[str, object] = {}
    if table:
        metadata["dagster/table_name"] = table
    if columns:
        schema = TableSchema(columns=[TableColumn(name, kind) for name, kind in columns])
        metadata["dagster/column_schema"] = schema
    return metadata


def freshness_policy(freshness: timedelta | None) -> FreshnessPolicy | None:
    """`checks.freshness` of the YAML: the asset fails its freshness when it has not been
    materialized for that long (Dagster evaluates it; no sensor is needed)."""
    return None if freshness is None else FreshnessPolicy.time_window(fail_window=freshness)


def automation_condition(automation: AutomationConfig | None) -> AutomationCondition | None:
    """The Dagster condition of `automation:` in the YAML."""
    if automation is None:
        return None
    if automation.condition == "on_cron":
        return AutomationCondition.on_cron(automation.cron or "", automation.timezone)
    if automation.condition == "eager":
        return AutomationCondition.eager()
    return AutomationCondition.on_missing()
