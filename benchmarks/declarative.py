"""The cost of declaring a connector: `bizon run` of the same pages by a hand-written
source (`bench`), a `RestSource` (`bench_rest`) and the declarative `rest_api` source.

    python benchmarks/declarative.py                      # 1M records, 5 rounds
    python benchmarks/declarative.py --records 200000 --rounds 3

Each round runs the three, in turn, into the file destination against the same local
page server (its own process). Noise on a shared machine only ever adds time, so the
figures are the best of the rounds (the median is shown too), and the ratios are against
the hand-written source measured in the same rounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from throughput import BIN, HERE, Measure, measure, page_server

SOURCES = {
    "hand-written get()": "{name: bench, stream: records, base_url: '%s'}",
    "RestSource": "{name: bench_rest, stream: records, base_url: '%s'}",
    "rest_api YAML": (
        "{name: rest_api, stream: records, base_url: '%s',"
        " paginator: {type: cursor, cursor_path: next_page, param: page},"
        " endpoints: {records: {path: bench, records_path: items, params: {page: 0}}}}"
    ),
}


def run_once(name: str, url: str, workdir: Path, records: int) -> Measure:
    pipeline = workdir / "pipeline.yml"
    output = workdir / "out.jsonl"
    pipeline.write_text(
        f"name: bench_declarative\nsource: {SOURCES[name] % url}\n"
        f"destination: {{name: file, config: {{path: '{output}'}}}}\n"
    )
    argv = [str(BIN / "bizon"), "run", str(pipeline), "--state", str(workdir / "state.db")]
    env = {"BIZON_CONNECTORS_PATH": str(HERE / "connectors")}
    result = measure(name, argv, records, {**os.environ, **env})
    with open(output, "rb") as written:
        count = sum(1 for _ in written)
    if count != records:
        raise SystemExit(f"{name}: {count} records written, expected {records}")
    output.unlink()
    (workdir / "state.db").unlink()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    seconds: dict[str, list[float]] = {name: [] for name in SOURCES}
    cpu: dict[str, list[float]] = {name: [] for name in SOURCES}
    with tempfile.TemporaryDirectory() as tmp, page_server(args.records, args.page_size) as url:
        for _ in range(args.rounds):
            for name in SOURCES:
                m = run_once(name, url, Path(tmp), args.records)
                seconds[name].append(m.seconds)
                cpu[name].append(m.cpu_seconds)
    print(f"{args.records:,} records, {args.page_size:,} per page, best of {args.rounds} rounds")
    header = f"{'source':<20} {'records/s':>12} {'seconds':>9} {'CPU s':>7} {'vs get()':>9}"
    print(f"{header} {'median s':>9} {'vs get()':>9}")
    best = {name: min(values) for name, values in seconds.items()}
    median = {name: statistics.median(values) for name, values in seconds.items()}
    baseline = "hand-written get()"
    for name in SOURCES:
        print(
            f"{name:<20} {args.records / best[name]:>12,.0f} {best[name]:>9.2f} "
            f"{min(cpu[name]):>7.2f} {best[name] / best[baseline] - 1:>+9.1%} "
            f"{median[name]:>9.2f} {median[name] / median[baseline] - 1:>+9.1%}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
