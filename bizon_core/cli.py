"""The `bizon` command line: list connectors, check and run pipelines.

Exit codes: 0 success, 1 a run or check failed, 2 a bad config or bad usage,
130 interrupted. Errors are one line; `--debug` adds the traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from bizon_core.cli_common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    print_table,
    selected_streams,
    write_output,
)
from bizon_core.cli_state import add_state_commands
from bizon_core.config import Pipeline, load_pipeline
from bizon_core.discovery import (
    CONNECTORS_PATH_ENV,
    ConnectorKind,
    discover,
    get_connector,
    load_connector_class,
)
from bizon_core.errors import BizonError, ConfigError
from bizon_core.scaffold.choices import AUTHS, PAGINATIONS
from bizon_core.scaffold.writer import write_source
from bizon_core.schema import schema_text
from bizon_core.secrets import RedactingFilter, redact
from bizon_core.sync.explain import explain_stream
from bizon_core.sync.runner import RunProgress, RunResult, run_stream
from bizon_core.sync.sqlite_store import SqliteStateStore, default_state_path

logger = logging.getLogger("bizon_core.cli")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `bizon` command; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    restore_logging = _configure_logging(args.debug)
    try:
        return args.handler(args)
    except BizonError as exc:
        _report(exc, args.debug)
        return exc.exit_code
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug, not a user error: still one line unless --debug
        _report(exc, args.debug, prefix=f"unexpected {type(exc).__name__}: ")
        return EXIT_FAILED
    finally:
        restore_logging()


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks"
    )
    parser = argparse.ArgumentParser(
        prog="bizon", description="Load API data page by page.", parents=[common]
    )
    parser.set_defaults(debug=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    source = commands.add_parser("source", help="source connectors", parents=[common])
    source_commands = source.add_subparsers(dest="action", required=True, metavar="ACTION")
    source_commands.add_parser(
        "list", help="list the sources found", parents=[common]
    ).set_defaults(handler=_source_list)

    destination = commands.add_parser(
        "destination", help="destination connectors", parents=[common]
    )
    destination_commands = destination.add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    destination_commands.add_parser(
        "list", help="list the destinations found", parents=[common]
    ).set_defaults(handler=_destination_list)

    stream = commands.add_parser("stream", help="streams of a source", parents=[common])
    stream_commands = stream.add_subparsers(dest="action", required=True, metavar="ACTION")
    stream_list = stream_commands.add_parser(
        "list", help="list a source's streams", parents=[common]
    )
    stream_list.add_argument(
        "source",
        help="source name, as `bizon source list` shows it, or a pipeline YAML file "
        "(for a source whose streams are declared in its config, like rest_api)",
    )
    stream_list.set_defaults(handler=_stream_list)

    run = commands.add_parser("run", help="run a pipeline", parents=[common])
    run.add_argument("config", type=Path, help="pipeline YAML file")
    run.add_argument(
        "--stream", action="append", dest="streams", metavar="NAME", help="run only this stream"
    )
    run.add_argument(
        "--state", type=Path, default=None, help="state file (default .bizon/state.db)"
    )
    run.add_argument(
        "--no-resume",
        action="store_false",
        dest="resume",
        help="start over instead of resuming a failed run from its checkpoint",
    )
    run.add_argument(
        "--explain",
        action="store_true",
        help="show each request, answer, retry and page decision; write nothing, save no state",
    )
    run.add_argument(
        "--max-records",
        type=int,
        default=None,
        metavar="N",
        help="with --explain: stop after N records",
    )
    run.set_defaults(handler=_run)

    add_state_commands(commands, common)

    schema = commands.add_parser(
        "schema", help="print the JSON Schema of pipeline YAMLs", parents=[common]
    )
    schema.add_argument("-o", "--output", type=Path, default=None, help="write it to this file")
    schema.add_argument(
        "--builtin-only",
        action="store_true",
        help="only the built-in connectors (the schema committed in schema/)",
    )
    schema.set_defaults(handler=_schema)

    new = commands.add_parser("new", help="scaffold a connector", parents=[common])
    new_commands = new.add_subparsers(dest="action", required=True, metavar="KIND")
    new_source = new_commands.add_parser(
        "source", help="a source on RestSource, with its example config and test", parents=[common]
    )
    new_source.add_argument("name", help="the source's name: lowercase, digits, underscores")
    new_source.add_argument("--auth", choices=sorted(AUTHS), default="bearer")
    new_source.add_argument("--pagination", choices=sorted(PAGINATIONS), default="cursor")
    new_source.add_argument(
        "--into",
        type=Path,
        default=None,
        help="a connectors directory (on BIZON_CONNECTORS_PATH); default: the built-in one",
    )
    new_source.set_defaults(handler=_new_source)

    check = commands.add_parser(
        "check", help="validate a pipeline and test connections", parents=[common]
    )
    check.add_argument("config", type=Path, help="pipeline YAML file")
    check.add_argument(
        "--config-only",
        action="store_true",
        help="validate the config (connectors, fields, secrets) without connecting",
    )
    check.set_defaults(handler=_check)
    return parser


def _source_list(args: argparse.Namespace) -> int:
    sources = discover(ConnectorKind.SOURCE)
    rows = [
        (
            info.name,
            "in config"
            if info.streams_in_config
            else ",".join(info.streams)
            if info.streams is not None
            else "?",
            "yes" if info.supports_incremental else "no",
            str(info.path.parent.parent),
        )
        for info in sources.values()
    ]
    print_table(("SOURCE", "STREAMS", "INCREMENTAL", "PATH"), rows)
    return EXIT_OK


def _destination_list(args: argparse.Namespace) -> int:
    rows = [
        (i.name, str(i.path.parent.parent)) for i in discover(ConnectorKind.DESTINATION).values()
    ]
    print_table(("DESTINATION", "PATH"), rows)
    return EXIT_OK


def _stream_list(args: argparse.Namespace) -> int:
    if args.source.endswith((".yml", ".yaml")):
        pipeline = load_pipeline(args.source)
        info, streams = pipeline.source_info, pipeline.declared_streams
    else:
        info = get_connector(ConnectorKind.SOURCE, args.source)
        if info.streams_in_config:
            raise ConfigError(
                f"source '{info.name}' declares its streams in a pipeline's config: "
                "run `bizon stream list PIPELINE.yml`"
            )
        streams = info.streams
        if streams is None:
            # streams() is computed at run time: only now, for this one source, do we import.
            streams = tuple(load_connector_class(info).streams())
    mode = "incremental" if info.supports_incremental else "full refresh only"
    print_table(("STREAM", "SYNC"), [(stream, mode) for stream in streams])
    return EXIT_OK


def _schema(args: argparse.Namespace) -> int:
    write_output(schema_text(builtin_only=args.builtin_only), args.output, "the schema")
    return EXIT_OK


def _new_source(args: argparse.Namespace) -> int:
    folder = write_source(args.name, args.auth, args.pagination, args.into)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        print(f"wrote {path}")
    on_path = os.environ.get(CONNECTORS_PATH_ENV, "").split(os.pathsep)
    if args.into is not None and str(args.into) not in on_path:
        print(f"note: add {args.into} to {CONNECTORS_PATH_ENV} for bizon to find the source")
    print("next: set base_url, the paths and records_path in src/source.py, then")
    print(f"  bizon check {folder / 'config' / f'{args.name}.example.yml'}")
    print(f"  python -m pytest {folder / 'tests'}")
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    pipeline = load_pipeline(args.config)
    streams = selected_streams(pipeline, args.streams)
    if args.max_records is not None and not args.explain:
        raise ConfigError("--max-records goes with --explain")
    if args.explain:
        return _explain(pipeline, streams, args.state, args.max_records)
    if pipeline.config.partitions is not None:
        raise ConfigError(
            f"{args.config}: partitions: a partitioned pipeline runs from Dagster, one "
            "partition at a time (a whole-stream run would replace every partition's rows)"
        )
    store = SqliteStateStore(args.state)
    failures = 0
    for stream in streams:
        progress = _ProgressLine(sys.stderr)
        try:
            result = run_stream(
                pipeline, stream, store, resume=args.resume, on_progress=progress.update
            )
        except BizonError as exc:
            progress.close()
            if len(streams) == 1:
                raise
            failures += 1
            _report(exc, args.debug)
            continue
        progress.close()
        print(_summary(result), flush=True)
    return EXIT_FAILED if failures else EXIT_OK


def _explain(
    pipeline: Pipeline, streams: list[str], state: Path | None, max_records: int | None
) -> int:
    path = state or default_state_path()
    store = SqliteStateStore(path) if path.exists() else None
    for stream in streams:
        explain_stream(pipeline, stream, store, sys.stdout, max_records)
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    pipeline = load_pipeline(args.config)
    route = f"{pipeline.source_info.name} -> {pipeline.destination_info.name}"
    print(f"{args.config}: config OK ({route})")
    if args.config_only:
        return EXIT_OK
    failed = False
    for stream, config in pipeline.source_configs.items():
        source = pipeline.source_class(config)
        try:
            ok, reason = source.check_connection()
        except Exception as exc:
            ok, reason = False, f"{type(exc).__name__}: {exc}"
        finally:
            source.close()
        failed |= not ok
        status = "connection OK" if ok else f"connection FAILED: {redact(str(reason))}"
        print(f"source '{pipeline.source_info.name}' stream '{stream}': {status}")
    failed |= not _check_destination(pipeline)
    return EXIT_FAILED if failed else EXIT_OK


def _check_destination(pipeline: Pipeline) -> bool:
    stream = pipeline.streams[0]
    destination = pipeline.destination(stream, run_id="check")
    ok, reason = destination.check_connection()
    status = "connection OK" if ok else f"connection FAILED: {redact(str(reason))}"
    print(f"destination '{pipeline.destination_info.name}': {status}")
    return ok


def _summary(result: RunResult) -> str:
    where = ", ".join(
        f"{k}={v}" for k, v in result.destination.items() if isinstance(v, str | int | float)
    )
    mode = result.sync_mode.value.replace("_", " ")
    if result.fetched_after is not None:
        mode += f" after {result.fetched_after.isoformat(timespec='seconds')}"
    resumed = (
        f", resumed at record {result.resumed_from.records} "
        f"({result.attempt_records:,} records in this attempt)"
        if result.resumed_from
        else ""
    )
    highest = f", max cursor {result.max_cursor}" if result.max_cursor else ""
    return (
        f"{result.key.stream}: {result.records:,} records in {result.pages:,} pages, "
        f"{result.duration_seconds:.1f}s ({result.records_per_second:,.0f} records/s), "
        f"{mode}{resumed}{highest}{' -> ' + where if where else ''}"
    )


class _ProgressLine:
    """A live line on a terminal; a log line every few seconds elsewhere."""

    def __init__(self, stream: TextIO, interval: float | None = None):
        self.stream = stream
        self.tty = stream.isatty()
        self.interval = interval if interval is not None else (0.1 if self.tty else 5.0)
        self.last = 0.0
        self.shown = False

    def update(self, progress: RunProgress) -> None:
        now = time.monotonic()
        if now - self.last < self.interval:
            return
        self.last = now
        eta = progress.eta_seconds
        line = (
            f"{progress.key.stream}: {progress.pages:,} pages, {progress.records:,} records, "
            f"{progress.records_per_second:,.0f} records/s"
            + (f", ETA {eta:,.0f}s" if eta is not None else "")
        )
        if self.tty:
            self.stream.write(f"\r\x1b[K{line}")
            self.stream.flush()
            self.shown = True
        else:
            logger.info(line)

    def close(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def _configure_logging(debug: bool) -> Callable[[], None]:
    """Log to stderr with secrets masked; returns a function that restores the previous setup."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    quiet = [logging.getLogger(name) for name in ("urllib3", "requests")]
    saved_quiet = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.WARNING)

    def restore() -> None:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        for q, level in zip(quiet, saved_quiet, strict=True):
            q.setLevel(level)

    return restore


def _report(exc: BaseException, debug: bool, prefix: str = "") -> None:
    if debug:
        logger.error("%s%s", prefix, exc, exc_info=exc)
    print(f"error: {redact(prefix + str(exc))}", file=sys.stderr)
    if prefix and not debug:
        print("run again with --debug for the traceback", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
