"""`BizonComponent`: a bizon pipeline as a Dagster Component, for projects managed with `dg`.

    dg scaffold defs bizon_dagster.BizonComponent github

writes `defs/github/defs.yaml` and a starter `pipeline.yml` beside it::

    type: bizon_dagster.BizonComponent
    attributes:
      pipeline: pipeline.yml          # relative to this folder; or `config:` inline
      per_stream: true                # optional: a step per stream
      translation:                    # optional: any asset attribute, templated per stream
        group_name: raw_github
        owners: [team:data]
        tags: {domain: engineering}
        kinds: [github]
        key_prefix: [raw]
        automation_condition: "{{ automation_condition.on_cron('0 * * * *') }}"

`{{ stream }}`, `{{ source }}` and `{{ pipeline }}` can be used in `translation`.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, Any

import dagster as dg
from dagster.components.component_scaffolding import scaffold_component
from dagster.components.utils.translation import TranslationFn, TranslationFnResolver
from pydantic import BaseModel, model_validator

from bizon_core.config import Pipeline, load_pipeline, pipeline_from_dict
from bizon_core.discovery import builtin_connectors_dir
from bizon_dagster.loader import pipeline_definitions
from bizon_dagster.translator import BizonStream, BizonTranslator

STARTER = builtin_connectors_dir() / "sources" / "dummy" / "config" / "dummy.example.yml"


def _template_vars(stream: BizonStream) -> dict[str, str]:
    return {"stream": stream.stream, "source": stream.source, "pipeline": stream.pipeline.name}


class BizonScaffoldParams(BaseModel):
    """`dg scaffold defs bizon_dagster.BizonComponent NAME [--pipeline FILE]`."""

    pipeline: str | None = None


class BizonScaffolder(dg.Scaffolder[BizonScaffoldParams]):
    """Writes `defs.yaml` naming a pipeline YAML; without `--pipeline`, a starter one (the
    dummy source into DuckDB, which runs offline) beside it."""

    @classmethod
    def get_scaffold_params(cls) -> type[BizonScaffoldParams]:
        return BizonScaffoldParams

    def scaffold(self, request: dg.ScaffoldRequest[BizonScaffoldParams]) -> None:
        pipeline = request.params.pipeline if request.params else None
        if pipeline is None:
            pipeline = "pipeline.yml"
            shutil.copyfile(STARTER, request.target_path / pipeline)
        scaffold_component(request, {"pipeline": pipeline})


@dg.scaffold_with(BizonScaffolder)
class BizonComponent(dg.Component, dg.Resolvable, dg.Model):
    """The streams of a bizon pipeline as assets, with their checks, job, schedule or
    automation, and new-data sensor; each stream's cursor in Dagster's event log."""

    pipeline: str | None = None
    config: dict[str, Any] | None = None
    per_stream: bool | None = None
    translation: (
        Annotated[TranslationFn[BizonStream], TranslationFnResolver(_template_vars)] | None
    ) = None

    @model_validator(mode="after")
    def _one_pipeline(self) -> BizonComponent:
        if (self.pipeline is None) == (self.config is None):
            raise ValueError("give either pipeline (a YAML path) or config (the pipeline inline)")
        return self

    def load_pipeline(self, folder: Path) -> Pipeline:
        """The pipeline, its path relative to the component's folder."""
        if self.pipeline is not None:
            return load_pipeline(folder / self.pipeline)
        return pipeline_from_dict(self.config, folder / "defs.yaml")

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        translator = _Translated(self.translation)
        return pipeline_definitions(
            self.load_pipeline(context.path), translator=translator, per_stream=self.per_stream
        )


class _Translated(BizonTranslator):
    """The default specs, then the component's `translation`."""

    def __init__(self, translation: TranslationFn[BizonStream] | None):
        self.translation = translation

    def get_asset_spec(self, stream: BizonStream) -> dg.AssetSpec:
        spec = super().get_asset_spec(stream)
        return spec if self.translation is None else self.translation(spec, stream)
