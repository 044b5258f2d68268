"""Throughput and memory of `bizon run` into JSON lines, against a bare loop, in one run.

    python benchmarks/throughput.py                  # 1M and 5M records, 1,000 per page
    python benchmarks/throughput.py --records 200000 # a quick look

A local server (its own process) serves pre-generated pages of ~10-field records. Each
subject runs in its own process, so its peak RSS is its own (from `wait4`):
- baseline: `benchmarks/bare_loop.py`, requests + orjson, fetch-parse-write, nothing else;
- bizon: `bizon run` of the `bench` source into the `file` destination;
- dagster: the same pipeline materialized through Dagster (`bizon_assets`, in process),
  import of Dagster included, on a local instance that already exists (created by an
  unmeasured run of the dummy example first, as a deployment's instance would be).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
DUMMY_EXAMPLE = HERE.parent / "connectors" / "sources" / "dummy" / "config" / "dummy.example.yml"


@dataclass
class Measure:
    name: str
    records: int
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float

    @property
    def rate(self) -> float:
        return self.records / self.seconds


def measure(name: str, argv: list[str], records: int, env: dict[str, str] | None = None) -> Measure:
    """Run `argv` to completion; wall time and the child's own peak RSS."""
    with tempfile.TemporaryFile() as stderr:
        start = time.perf_counter()
        process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            stderr.seek(0)
            tail = stderr.read()[-2000:].decode(errors="replace")
            raise SystemExit(f"{name} failed:\n{tail}")
    return Measure(name, records, seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def start_server(records: int, page_size: int) -> tuple[subprocess.Popen, str]:
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bizon_core.testing",
            "--bench-records",
            str(records),
            "--page-size",
            str(page_size),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = server.stdout.readline().strip()  # type: ignore[union-attr]
    if not line.startswith("READY "):
        server.kill()
        raise SystemExit(f"benchmark server did not start: {line!r}")
    return server, line.removeprefix("READY ")


def run_size(records: int, page_size: int, workdir: Path) -> tuple[Measure, Measure, Measure]:
    server, url = start_server(records, page_size)
    try:
        baseline = measure(
            "bare loop",
            [sys.executable, str(HERE / "bare_loop.py"), url, str(workdir / "bare.jsonl")],
            records,
        )
        pipeline = workdir / "bench.yml"
        pipeline.write_text(
            "name: bench\n"
            f"source: {{name: bench, stream: records, base_url: '{url}'}}\n"
            f"destination: {{name: file, config: {{path: '{workdir}/bizon.jsonl'}}}}\n"
        )
        env = {**os.environ, "BIZON_CONNECTORS_PATH": str(HERE / "connectors")}
        bizon = measure(
            "bizon run",
            [str(BIN / "bizon"), "run", str(pipeline), "--state", str(workdir / "state.db")],
            records,
            env,
        )
        check_output(workdir / "bizon.jsonl", records)
        (workdir / "bizon.jsonl").unlink()
        home = workdir / "dagster_home"
        home.mkdir()
        dagster_env = {**env, "DAGSTER_HOME": str(home)}
        materialize = [sys.executable, str(HERE / "dagster_materialize.py")]
        warm_up = [*materialize, str(DUMMY_EXAMPLE)]
        subprocess.run(warm_up, env=dagster_env, cwd=workdir, check=True, capture_output=True)
        dagster = measure("dagster", [*materialize, str(pipeline)], records, dagster_env)
        check_output(workdir / "bizon.jsonl", records)
    finally:
        server.terminate()
        server.wait()
    return baseline, bizon, dagster


def check_output(path: Path, records: int) -> None:
    with open(path, "rb") as written:
        lines = sum(1 for _ in written)
    if lines != records:
        raise SystemExit(f"{path} has {lines} records, expected {records}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--page-size", type=int, default=1000)
    args = parser.parse_args()
    results: list[tuple[Measure, Measure, Measure]] = []
    for records in args.records:
        with tempfile.TemporaryDirectory() as tmp:
            baseline, bizon, dagster = run_size(records, args.page_size, Path(tmp))
        results.append((baseline, bizon, dagster))
        print(f"\n{records:,} records, {args.page_size:,} per page")
        print(f"{'subject':<12} {'records/s':>12} {'seconds':>9} {'CPU s':>7} {'peak RSS MB':>12}")
        for m in (baseline, bizon, dagster):
            print(
                f"{m.name:<12} {m.rate:>12,.0f} {m.seconds:>9.2f} {m.cpu_seconds:>7.2f} "
                f"{m.peak_rss_mb:>12.1f}"
            )
        print(f"bizon / bare loop: {bizon.rate / baseline.rate:.2f} of the throughput")
        print(
            f"dagster / bizon: {dagster.seconds / bizon.seconds:.2f} of the wall time, "
            f"{dagster.peak_rss_mb - bizon.peak_rss_mb:+.1f} MB peak RSS"
        )
    if len(results) > 1:
        first, last = results[0][1], results[-1][1]
        growth = last.peak_rss_mb / first.peak_rss_mb - 1
        print(
            f"\npeak RSS of bizon at {last.records:,} vs {first.records:,} records: {growth:+.1%}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
