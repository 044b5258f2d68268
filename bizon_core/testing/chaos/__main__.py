"""`python -m bizon_core.testing.chaos`: kill -9 trials and overlapping runs; prints tables.

Exit code 0 when every trial and overlap was exact, 1 otherwise (each failure listed,
with the seed that runs it again).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from bizon_core.testing.chaos.concurrency import VARIANTS, ConcurrencyResult, run_concurrency
from bizon_core.testing.chaos.kills import PHASES
from bizon_core.testing.chaos.paths import PATHS
from bizon_core.testing.chaos.report import concurrency_table, failure_lines, trials_table
from bizon_core.testing.chaos.suite import run_trials, trial_configs
from bizon_core.testing.chaos.targets import DESTINATIONS
from bizon_core.testing.chaos.trial import MODES, TrialConfig, TrialResult
from bizon_core.testing.postgres import temporary_postgres


def _choices(allowed: tuple[str, ...]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        values = [v.strip() for v in text.split(",") if v.strip()]
        unknown = [v for v in values if v not in allowed]
        if unknown or not values:
            raise argparse.ArgumentTypeError(f"expected some of {','.join(allowed)}")
        return values

    return parse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bizon_core.testing.chaos", description=__doc__)
    parser.add_argument("--trials", type=int, default=3, help="per destination, path and mode")
    parser.add_argument("--records", type=int, default=200_000, help="records of generation 0")
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--destinations", type=_choices(DESTINATIONS), default=list(DESTINATIONS))
    parser.add_argument("--paths", type=_choices(PATHS), default=list(PATHS))
    parser.add_argument("--modes", type=_choices(MODES), default=list(MODES))
    parser.add_argument("--seed", type=int, default=None, help="default: a random one, printed")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds, per sync")
    parser.add_argument(
        "--concurrency",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also start two runs of one stream together, per destination and path",
    )
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    print(f"chaos: seed {seed}, {args.records:,} records, kill phases: {', '.join(PHASES)}")
    base = TrialConfig(
        "file", "cli", "full_refresh", args.records, "", args.page_size, timeout=args.timeout
    )
    configs = trial_configs(base, args.destinations, args.paths, args.modes, args.trials, seed)
    started = time.monotonic()
    with ExitStack() as stack:
        postgres = None
        if "postgres" in args.destinations:
            postgres = stack.enter_context(temporary_postgres())
        results = run_trials(configs, postgres=postgres, on_result=_progress)
        overlaps: list[ConcurrencyResult] = []
        if args.concurrency:
            for config in _overlap_configs(base, args.destinations, args.paths, seed):
                for variant in VARIANTS if config.path == "cli" else VARIANTS[:1]:
                    with tempfile.TemporaryDirectory(prefix="bizon-chaos-") as workdir:
                        overlaps.append(run_concurrency(config, variant, Path(workdir), postgres))
    print(f"\nkill -9 trials ({time.monotonic() - started:,.0f}s), seed {seed}:\n")
    print(trials_table(results))
    if overlaps:
        print("\ntwo runs of one stream started together:\n")
        print(concurrency_table(overlaps))
    failures = failure_lines(results) + [
        f"[{o.seed}] {o.destination}/{o.path}/{o.variant}: {f}"
        for o in overlaps
        for f in o.failures
    ]
    if failures:
        print(f"\n{len(failures)} failures:")
        for line in failures:
            print(f"- {line}")
    return 1 if failures else 0


def _overlap_configs(
    base: TrialConfig, destinations: list[str], paths: list[str], seed: int
) -> list[TrialConfig]:
    return trial_configs(base, destinations, paths, ["full_refresh"], 1, seed + 1)


def _progress(result: TrialResult) -> None:
    status = "ok" if result.ok else f"FAILED ({len(result.failures)})"
    print(
        f"  {result.destination:<8} {result.path:<7} {result.mode:<12} "
        f"kills {' | '.join(result.kills):<40} {status}",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
