"""Pipeline configs: the YAML model, loading with secret resolution, and friendly errors.

A pipeline YAML names a source (and one or several of its streams) and a destination::

    name: dummy_to_file
    source:
      name: dummy
      stream: creatures          # or streams: [creatures, plants]
      sync_mode: incremental
      authentication:
        type: api_key
        params:
          token: env://DUMMY_TOKEN
    destination:
      name: file
      config:
        path: out/{stream}.jsonl

`load_pipeline()` resolves `env://` references, finds the connectors, and validates
each part with the connector's own config class.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bizon_core.cron import check_cron, check_timezone
from bizon_core.destination.config import DestinationConfig
from bizon_core.destination.destination import AbstractDestination, WriteContext
from bizon_core.discovery import ConnectorInfo, ConnectorKind, get_connector, load_connector_class
from bizon_core.errors import ConfigError
from bizon_core.secrets import (
    format_path,
    install_log_redaction,
    mask,
    name_config_secrets,
    resolve_references,
)
from bizon_core.source.config import SourceConfig, parse_duration
from bizon_core.source.source import AbstractSource
from bizon_core.sync.state import StreamKey
from bizon_core.yamlfile import read_yaml

M = TypeVar("M", bound=BaseModel)


class SourceSection(BaseModel):
    """`source:` as the pipeline sees it: which source and streams; the rest is the source's."""

    model_config = ConfigDict(extra="allow")

    name: str
    stream: str | None = None
    streams: list[str] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_of_stream_or_streams(self) -> SourceSection:
        if (self.stream is None) == (self.streams is None):
            raise ValueError("give exactly one of 'stream' or 'streams'")
        return self

    @property
    def stream_names(self) -> list[str]:
        return list(self.streams) if self.streams is not None else [self.stream]  # type: ignore[list-item]


class DestinationSection(BaseModel):
    """`destination:` of a pipeline: the destination's name and its own config."""

    model_config = ConfigDict(extra="forbid")

    name: str
    config: dict[str, Any] = Field(default_factory=dict)


class ScheduleConfig(BaseModel):
    """`schedule:` of a pipeline: when an orchestrator runs it."""

    model_config = ConfigDict(extra="forbid")

    cron: str = Field(description="A cron expression, e.g. `0 * * * *`.")
    timezone: str = Field(default="UTC", description="An IANA time zone, e.g. `Europe/Paris`.")

    _check_cron = field_validator("cron")(check_cron)
    _check_timezone = field_validator("timezone")(check_timezone)


class RetriesConfig(BaseModel):
    """`retries:` of a pipeline: how an orchestrator reruns a failed sync."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    max_retries: int = Field(default=3, ge=0)
    delay_seconds: float = Field(default=30.0, ge=0)


class SensorConfig(BaseModel):
    """`sensor:` of a pipeline: whether to poll the source for new data, and how often."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    minimum_interval_seconds: int = Field(default=300, ge=10)


_OWNER = re.compile(r"^(team:[A-Za-z0-9_.-]+|[^@\s]+@[^@\s]+\.[^@\s]+)$")
_TAG = re.compile(r"^[A-Za-z0-9_.-]{1,63}$")


def _check_owners(owners: list[str]) -> list[str]:
    for i, owner in enumerate(owners):
        if not _OWNER.match(owner):
            raise ValueError(f"[{i}] {owner!r}: an owner is an email or team:<name>")
    return owners


def _check_tags(tags: dict[str, str]) -> dict[str, str]:
    for key, value in tags.items():
        # Dagster's rules for tags used as filters: short words of letters, digits, _ . -
        for what, text in (("key", key), ("value", value)):
            if not _TAG.match(text):
                raise ValueError(
                    f"{key}: the {what} {text!r} must be 1 to 63 letters, digits, '_', '.' or '-'"
                )
    return tags


class AutomationConfig(BaseModel):
    """`automation:` of a pipeline: a Dagster automation condition instead of a schedule.

    `eager` and `on_missing` may be written alone (`automation: eager`); `on_cron` needs
    a `cron`.
    """

    model_config = ConfigDict(extra="forbid")

    condition: Literal["on_cron", "eager", "on_missing"]
    cron: str | None = Field(default=None, description="With on_cron: when, e.g. `0 * * * *`.")
    timezone: str = Field(default="UTC", description="With on_cron: an IANA time zone.")

    _check_cron = field_validator("cron")(lambda v: v if v is None else check_cron(v))
    _check_timezone = field_validator("timezone")(check_timezone)

    @model_validator(mode="before")
    @classmethod
    def _condition_alone(cls, value: Any) -> Any:
        return {"condition": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _cron_for_on_cron(self) -> AutomationConfig:
        if (self.condition == "on_cron") != (self.cron is not None):
            raise ValueError("cron is given with on_cron, and only with it")
        return self


class ExecutionConfig(BaseModel):
    """`execution:` of a pipeline: how its streams map to Dagster steps."""

    model_config = ConfigDict(extra="forbid")

    per_stream: bool = Field(
        default=False,
        description="Each stream its own step: streams run in parallel (multiprocess "
        "executor), retry alone, and fail alone.",
    )


class ChecksConfig(BaseModel):
    """`checks:` of a pipeline: Dagster asset checks beyond those every stream has."""

    model_config = ConfigDict(extra="forbid")

    freshness: timedelta | None = Field(
        default=None,
        description="A stream not materialized for this long fails its freshness, e.g. `1d`.",
    )

    _parse_freshness = field_validator("freshness", mode="before")(parse_duration)


class PartitionsConfig(BaseModel):
    """`partitions:` of a pipeline: each stream split in time windows on its cursor field,
    each window loaded (and reloaded) on its own by Dagster."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["hourly", "daily", "weekly", "monthly"]
    start: datetime = Field(description="The first partition's start, e.g. 2026-01-01.")
    timezone: str = Field(default="UTC", description="An IANA time zone, e.g. `Europe/Paris`.")
    end_offset: int = Field(
        default=0,
        ge=0,
        description="Partitions after the last complete one to offer: 1 adds the current one.",
    )
    lookback: int = Field(
        default=0,
        ge=0,
        description="Earlier partitions each scheduled run reloads too, for records that "
        "arrive late: 2 reloads the latest three.",
    )

    _check_timezone = field_validator("timezone")(check_timezone)


class PipelineConfig(BaseModel):
    """The top level of a pipeline YAML."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_]+$")
    source: SourceSection
    destination: DestinationSection
    # Orchestration settings; the CLI ignores them.
    schedule: ScheduleConfig | None = None
    retries: RetriesConfig = Field(default_factory=RetriesConfig)
    sensor: SensorConfig = Field(default_factory=SensorConfig)
    asset_key_prefix: list[str] = Field(default_factory=list)
    group: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_]+$",
        description="The Dagster asset group of the streams; default: the pipeline's name.",
    )
    owners: list[str] = Field(
        default_factory=list, description="Owners of the streams' assets: emails or team:<name>."
    )
    tags: dict[str, str] = Field(
        default_factory=dict, description="Tags of the streams' assets, e.g. {domain: sales}."
    )

    automation: AutomationConfig | None = None
    partitions: PartitionsConfig | None = None
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    checks: ChecksConfig = Field(default_factory=ChecksConfig)

    _check_owners = field_validator("owners")(_check_owners)
    _check_tags = field_validator("tags")(_check_tags)

    @model_validator(mode="after")
    def _one_trigger(self) -> PipelineConfig:
        if self.schedule is not None and self.automation is not None:
            raise ValueError("give schedule or automation, not both: each would start runs")
        return self


@dataclass
class Pipeline:
    """A validated pipeline: its config, connector classes and per-stream source configs."""

    config: PipelineConfig
    path: Path | None
    source_info: ConnectorInfo
    source_class: type[AbstractSource]
    source_configs: dict[str, SourceConfig]
    destination_info: ConnectorInfo
    destination_class: type[AbstractDestination]
    destination_config: DestinationConfig
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def streams(self) -> list[str]:
        return list(self.source_configs)

    @property
    def declared_streams(self) -> list[str]:
        """Every stream the source offers with this config, not only those the pipeline runs."""
        declared = self.source_class.available_streams(self.raw["source"])
        return self.streams if declared is None else declared

    def destination(self, stream: str, run_id: str) -> AbstractDestination:
        """The stream's destination, not yet begun (no connection is made), for a run
        starting now in the stream's configured sync mode."""
        context = WriteContext(
            pipeline=self.name,
            source=self.source_info.name,
            stream=stream,
            sync_mode=self.source_configs[stream].sync_mode,
            run_id=run_id,
            started_at=datetime.now(UTC),
        )
        return self.destination_class(self.destination_config, context)

    def stream_key(self, stream: str, partition: str | None = None) -> StreamKey:
        """The key of the stream's state (of one of its time partitions)."""
        return StreamKey(self.name, self.source_info.name, stream, partition)

    def masked(self) -> dict[str, Any]:
        """The pipeline config as written, with every secret replaced by `***`."""
        return mask(self.raw)


def load_pipeline(path: str | Path) -> Pipeline:
    """Read, resolve and validate the pipeline YAML at `path`; `ConfigError` names what is wrong."""
    path = Path(path)
    data = read_yaml(path)
    try:
        return pipeline_from_dict(data, path)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _check_partitioning(
    source_configs: dict[str, SourceConfig],
    destination_class: type[AbstractDestination],
    destination: str,
) -> None:
    if not destination_class.replaces_partitions:
        raise ConfigError(
            f"partitions: destination '{destination}' cannot replace one partition's rows; "
            "use a SQL destination (duckdb, postgres)"
        )
    for stream, config in source_configs.items():
        if config.cursor_field is None:
            raise ConfigError(
                f"partitions: stream '{stream}' has no cursor_field to place its records in "
                "time partitions; set source.cursor_field"
            )


def pipeline_from_dict(data: Any, path: Path | None = None) -> Pipeline:
    """Validate an already parsed pipeline config (see `load_pipeline`)."""
    if not isinstance(data, Mapping):
        raise ConfigError("a pipeline config must be a mapping with name, source and destination")
    resolved = resolve_references(data)
    config = _validate(PipelineConfig, resolved, ())

    source_info = get_connector(ConnectorKind.SOURCE, config.source.name)
    source_class = load_connector_class(source_info)
    source_raw = dict(resolved["source"])
    available = source_class.available_streams(source_raw)
    source_raw.pop("streams", None)
    source_configs = {}
    for stream in config.source.stream_names:
        if available is not None and stream not in available:
            raise ConfigError(
                f"source.stream: unknown stream '{stream}' of source '{source_info.name}'; "
                f"available: {', '.join(available)}"
            )
        config_class = source_class.get_config_class()
        stream_config = _validate(config_class, {**source_raw, "stream": stream}, ("source",))
        source_configs[stream] = source_class.with_default_cursor_field(stream_config)

    destination_info = get_connector(ConnectorKind.DESTINATION, config.destination.name)
    destination_class = load_connector_class(destination_info)
    if config.partitions is not None:
        _check_partitioning(source_configs, destination_class, destination_info.name)
    destination_config = _validate(
        destination_class.get_config_class(), config.destination.config, ("destination", "config")
    )
    # Validation registered the `Secret` fields' values: name them for sealed state, and
    # redact them in the logs of the connectors just imported.
    name_config_secrets(resolved)
    install_log_redaction()
    return Pipeline(
        config=config,
        path=path,
        source_info=source_info,
        source_class=source_class,
        source_configs=source_configs,
        destination_info=destination_info,
        destination_class=destination_class,
        destination_config=destination_config,
        raw=dict(data),
    )


def _validate(model: type[M], data: Any, prefix: tuple[str | int, ...]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, prefix, model)) from None


def describe_validation_error(
    exc: ValidationError,
    prefix: tuple[str | int, ...] = (),
    model: type[BaseModel] | None = None,
) -> str:
    """One line naming the first invalid field by its path; input values are never shown.

    An unknown field is named before a missing one, since a misspelt key causes both
    (`destinaton:` is unknown, so `destination` is missing): the line then suggests the
    missing key it most resembles.
    """
    errors = exc.errors(include_url=False, include_input=False)
    first = min(errors, key=lambda error: error["type"] != "extra_forbidden")
    loc, _ = _walk(model, first["loc"])
    location = format_path((*prefix, *loc))
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown field (check its spelling)"
        missing = [
            str(error["loc"][-1])
            for error in errors
            if error["type"] == "missing" and error["loc"][:-1] == first["loc"][:-1]
        ]
        name = str(first["loc"][-1])
        close = difflib.get_close_matches(name, missing, n=1) or difflib.get_close_matches(
            name, _known_fields(model, first["loc"]), n=1
        )
        if close:
            message = f"unknown field (did you mean '{close[0]}'?)"
    elif first["type"] == "missing":
        message = "required field is missing"
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return f"{location}: {message}{more if len(errors) > 1 else ''}"


def _walk(model: type[BaseModel] | None, loc: tuple[str | int, ...]) -> tuple[list, Any]:
    """The location without union tags, and the annotation it leads to in `model`.

    Follows `loc` through the model's fields (dicts, lists, optionals and unions, whose
    member pydantic names by class or by discriminator value); without a model, tags
    are recognised by their look.
    """
    clean: list[str | int] = []
    current: Any = model
    for part in loc:
        members = _members(current)
        step = next((m.model_fields[part].annotation for m in members if _has(m, part)), None)
        if step is None and isinstance(part, str):
            tagged = next((m for m in members if _is_member(m, part)), None)
            if tagged is not None or (model is None and _is_union_tag(part)):
                current = tagged
                continue  # a union member's tag: not part of the path the user wrote
        if step is None:
            container = next((m for m in members if get_origin(m) in (dict, list)), None)
            step = get_args(container)[-1] if container is not None else None
        clean.append(part)
        current = step
    return clean, current


def _known_fields(model: type[BaseModel] | None, loc: tuple[str | int, ...]) -> list[str]:
    """The fields the model allows where the last part of `loc` was given."""
    _, container = _walk(model, loc[:-1])
    return [f for m in _members(container) if _is_model(m) for f in m.model_fields]


def _members(annotation: Any) -> list[Any]:
    """The types an annotation may hold: itself, or the members of its union/Annotated."""
    if annotation is None:
        return []
    if get_origin(annotation) is Annotated:
        return _members(get_args(annotation)[0])
    if get_origin(annotation) in (Union, UnionType):
        return [m for arg in get_args(annotation) for m in _members(arg)]
    return [annotation]


def _is_model(member: Any) -> bool:
    return isinstance(member, type) and issubclass(member, BaseModel)


def _has(member: Any, part: str | int) -> bool:
    return _is_model(member) and part in member.model_fields


def _is_member(member: Any, tag: str) -> bool:
    """Whether pydantic names `member` by `tag` in a union: its class or its `type` value."""
    if not _is_model(member):
        return False
    field = member.model_fields.get("type")
    return member.__name__ == tag or (field is not None and field.default == tag)


def _is_union_tag(part: str | int) -> bool:
    # pydantic names the union member it tried, e.g. "TokenAuthParams" or "function-after[...]".
    return isinstance(part, str) and (part[:1].isupper() or "[" in part)
