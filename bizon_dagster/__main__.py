"""`python -m bizon_dagster state import|export`: streams' cursors into or out of the
Dagster instance of `$DAGSTER_HOME` (see `bizon_dagster.state_transfer`)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from dagster import DagsterError, DagsterInstance

from bizon_core.cli_common import write_output
from bizon_core.config import load_pipeline
from bizon_core.errors import BizonError
from bizon_core.sync.state_document import read_state_document
from bizon_dagster.state_transfer import export_state, import_state


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bizon_dagster")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    state = commands.add_parser("state", help="streams' cursors in the Dagster instance")
    actions = state.add_subparsers(dest="action", required=True, metavar="ACTION")
    imported = actions.add_parser("import", help="record the cursors of a `bizon state export`")
    imported.add_argument("config", type=Path, help="pipeline YAML file")
    imported.add_argument("file", type=Path, help="a file written by `bizon state export`")
    exported = actions.add_parser("export", help="the cursors, as `bizon state import` reads them")
    exported.add_argument("config", type=Path, help="pipeline YAML file")
    exported.add_argument("-o", "--output", type=Path, default=None, help="write to this file")
    args = parser.parse_args(argv)
    try:
        pipeline = load_pipeline(args.config)
        with DagsterInstance.get() as instance:
            if args.action == "import":
                document = read_state_document(args.file)
                for stream, key in import_state(
                    instance, pipeline, document, str(args.file)
                ).items():
                    print(f"{stream}: cursor recorded on asset {key.to_user_string()}")
                return 0
            text = json.dumps(export_state(instance, pipeline), indent=2) + "\n"
            write_output(text, args.output, "the cursors")
            return 0
    except BizonError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except DagsterError as exc:  # e.g. DAGSTER_HOME not set
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
