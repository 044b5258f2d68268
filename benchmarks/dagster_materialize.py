"""Materialize a pipeline's assets through Dagster, in process, on the $DAGSTER_HOME instance.

DAGSTER_HOME=/some/dir python benchmarks/dagster_materialize.py PIPELINE.yml
"""

from __future__ import annotations

import sys

import dagster as dg

from bizon_dagster import bizon_assets


def main(pipeline: str) -> int:
    with dg.DagsterInstance.get() as instance:
        result = dg.materialize([bizon_assets(pipeline)], instance=instance)
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
