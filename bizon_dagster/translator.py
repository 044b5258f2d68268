"""`BizonTranslator`: the one place to customise how a stream becomes a Dagster asset."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dagster import AssetKey, AssetSpec, MetadataValue

from bizon_core.config import Pipeline


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

    The default key is `[*asset_key_prefix, source, stream]`, the group is the source's
    name, and the kinds are `bizon` and the destination. Example::

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
            metadata["bizon/config_path"] = MetadataValue.path(str(stream.config_path))
        return AssetSpec(
            key=AssetKey([*pipeline.config.asset_key_prefix, stream.source, stream.stream]),
            description=f"Stream `{stream.stream}` of source `{stream.source}`, loaded into "
            f"`{stream.destination}` by pipeline `{pipeline.name}`.\n\n{docstring}",
            group_name=stream.source,
            kinds={"bizon", stream.destination},
            metadata=metadata,
            tags={"bizon/sync_mode": config.sync_mode.value},
        )
