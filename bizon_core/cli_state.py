"""`bizon state show|reset|export|import`: the CLI store's cursors, seen, reset and moved."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bizon_core.cli_common import EXIT_OK, print_table, selected_streams, write_output
from bizon_core.config import load_pipeline
from bizon_core.sync.sqlite_store import SqliteStateStore
from bizon_core.sync.state_document import export_state, read_state_document, runs_of


def add_state_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add `bizon state ...` to the parser's commands."""
    state = commands.add_parser(
        "state", help="the streams' cursors in the CLI's state store", parents=[common]
    )
    actions = state.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(
        name: str, summary: str, handler: Callable[[argparse.Namespace], int]
    ) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=summary, parents=[common])
        parser.add_argument("config", type=Path, help="pipeline YAML file")
        parser.add_argument(
            "--stream",
            action="append",
            dest="streams",
            metavar="NAME",
            help="only this stream (repeatable)",
        )
        parser.add_argument(
            "--state", type=Path, default=None, help="state file (default .bizon/state.db)"
        )
        parser.set_defaults(handler=handler)
        return parser

    action("show", "each stream's last successful run, cursor and resumable checkpoint", _show)
    action(
        "reset", "forget the streams' runs and checkpoints: the next run fetches everything", _reset
    )
    export = action(
        "export", "the streams' cursors as JSON (for `state import` or Dagster)", _export
    )
    export.add_argument("-o", "--output", type=Path, default=None, help="write it to this file")
    imported = action("import", "set the streams' cursors from an export", _import)
    imported.add_argument("file", type=Path, help="a file written by `bizon state export`")


def _show(args: argparse.Namespace) -> int:
    pipeline = load_pipeline(args.config)
    store = SqliteStateStore(args.state)
    rows = []
    for stream in selected_streams(pipeline, args.streams):
        key = pipeline.stream_key(stream)
        run, checkpoint = store.last_success(key), store.resume_point(key)
        resume = (
            f"{checkpoint.records:,} records, {checkpoint.pages:,} pages (run {checkpoint.run_id})"
            if checkpoint
            else "-"
        )
        if run is None:
            rows.append((stream, "never", "-", "-", "-", resume))
            continue
        max_cursor = run.state.get("max_cursor") or "-"
        rows.append(
            (
                stream,
                run.started_at.isoformat(),
                run.sync_mode.value,
                f"{run.records:,}",
                max_cursor,
                resume,
            )
        )
    print_table(("STREAM", "LAST RUN", "MODE", "RECORDS", "MAX CURSOR", "RESUMES AFTER"), rows)
    return EXIT_OK


def _reset(args: argparse.Namespace) -> int:
    pipeline = load_pipeline(args.config)
    store = SqliteStateStore(args.state)
    for stream in selected_streams(pipeline, args.streams):
        key = pipeline.stream_key(stream)
        with store.lock(key):  # not while a run syncs it
            runs, checkpoints = store.reset(key)
        forgotten = f"{runs} runs, {checkpoints} checkpoints forgotten"
        print(f"{stream}: reset ({forgotten}); its next run fetches everything")
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    pipeline = load_pipeline(args.config)
    document = export_state(
        pipeline, SqliteStateStore(args.state), selected_streams(pipeline, args.streams)
    )
    written = f"the cursors of {len(document['streams'])} streams"
    write_output(json.dumps(document, indent=2) + "\n", args.output, written)
    return EXIT_OK


def _import(args: argparse.Namespace) -> int:
    pipeline = load_pipeline(args.config)
    runs = runs_of(read_state_document(args.file), pipeline, str(args.file))
    wanted = selected_streams(pipeline, args.streams)
    store = SqliteStateStore(args.state)
    for stream, run in runs.items():
        if stream in wanted:
            key = pipeline.stream_key(stream)
            with store.lock(key):
                store.replace(key, run)
            print(f"{stream}: cursor set to the run started {run.started_at.isoformat()}")
    return EXIT_OK
