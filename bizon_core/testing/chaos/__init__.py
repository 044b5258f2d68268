"""The kill -9 harness: sync, SIGKILL at chosen moments, rerun, and check the result.

For connector and destination authors, and for `make chaos`::

    python -m bizon_core.testing.chaos --trials 10 --destinations file,duckdb,postgres \\
        --paths cli,dagster --modes full_refresh,incremental

or from Python::

    from bizon_core.testing.chaos import TrialConfig, run_trials, trials_table

    results = run_trials([TrialConfig("duckdb", "cli", "incremental", 200_000, seed="1")])
    print(trials_table(results))

Each trial serves a collection of records from a local server (`pages`), writes a pipeline
YAML of the `chaos` source (`bizon_core/testing/connectors`) into the destination at its
defaults, runs the sync as a subprocess in its own process group (`bizon run`, or
`dagster asset materialize`), kills the group with SIGKILL (`kills`: a random moment, a
page request in flight, inside a destination write, inside or right after the commit; once
or twice in a row), reruns it to success and checks the rows, the resume and the cursor
(`trial`). `concurrency` starts two runs of one stream together.
"""

from bizon_core.testing.chaos.concurrency import ConcurrencyResult, run_concurrency
from bizon_core.testing.chaos.kills import PHASES, Kill
from bizon_core.testing.chaos.pages import Collection, GenerationsServer
from bizon_core.testing.chaos.report import concurrency_table, failure_lines, trials_table
from bizon_core.testing.chaos.suite import run_trials, trial_configs
from bizon_core.testing.chaos.trial import Trial, TrialConfig, TrialResult

__all__ = [
    "PHASES",
    "Collection",
    "ConcurrencyResult",
    "GenerationsServer",
    "Kill",
    "Trial",
    "TrialConfig",
    "TrialResult",
    "concurrency_table",
    "failure_lines",
    "run_concurrency",
    "run_trials",
    "trial_configs",
    "trials_table",
]
