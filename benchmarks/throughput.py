"""Throughput and memory of `bizon run` into each destination, against a bare loop, in one run.

    python benchmarks/throughput.py                                # 1M and 5M records
    python benchmarks/throughput.py --records 200000 --subjects bare file duckdb

A local server (its own process) serves pre-generated pages of ~10-field records,
1,000 per page. Each subject runs in its own process, so its peak RSS is its own
(from `wait4`):
- bare: `benchmarks/bare_loop.py`, requests + orjson, fetch-parse-write, nothing else;
- file, duckdb, postgres: `bizon run` of the `bench` source into that destination
  (postgres: a throw-away server with default, durable settings, started here);
- dagster: the `file` pipeline materialized through Dagster (`bizon_assets`, in
  process), import of Dagster included, on a local instance that already exists
  (created by an unmeasured run of the dummy example first, as a deployment's is).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
DUMMY_EXAMPLE = HERE.parent / "connectors" / "sources" / "dummy" / "config" / "dummy.example.yml"
SUBJECTS = ("bare", "file", "dagster", "duckdb", "postgres")


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
    """Run `argv` to completion (through `peak_rss.py`): wall time, CPU time, peak RSS."""
    with tempfile.TemporaryFile() as stderr, tempfile.NamedTemporaryFile() as figures:
        launcher = [sys.executable, "-S", str(HERE / "peak_rss.py"), figures.name]
        start = time.perf_counter()
        subprocess.run([*launcher, *argv], env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        seconds = time.perf_counter() - start
        result = json.loads(Path(figures.name).read_text())
        if result["exit_code"] != 0:
            stderr.seek(0)
            tail = stderr.read()[-2000:].decode(errors="replace")
            raise SystemExit(f"{name} failed:\n{tail}")
    return Measure(name, records, seconds, result["cpu_seconds"], result["peak_rss_mb"])


@contextmanager
def page_server(records: int, page_size: int) -> Iterator[str]:
    """The benchmark pages, served by `python -m bizon_core.testing` in its own process."""
    argv = [sys.executable, "-m", "bizon_core.testing", "--bench-records", str(records)]
    server = subprocess.Popen(
        [*argv, "--page-size", str(page_size)], stdout=subprocess.PIPE, text=True
    )
    try:
        line = server.stdout.readline().strip()  # type: ignore[union-attr]
        if not line.startswith("READY "):
            raise SystemExit(f"benchmark server did not start: {line!r}")
        yield line.removeprefix("READY ")
    finally:
        server.terminate()
        server.wait()


class Run:
    """One size: the subjects, measured against the same pages."""

    def __init__(self, records: int, url: str, workdir: Path, postgres: object | None):
        self.records = records
        self.url = url
        self.workdir = workdir
        self.postgres = postgres
        self.env = {**os.environ, "BIZON_CONNECTORS_PATH": str(HERE / "connectors")}

    def bare(self) -> Measure:
        argv = [
            sys.executable,
            str(HERE / "bare_loop.py"),
            self.url,
            str(self.workdir / "bare.jsonl"),
        ]
        return measure("bare loop", argv, self.records)

    def bizon(self, destination: str) -> Measure:
        pipeline = self.pipeline(destination)
        argv = [
            str(BIN / "bizon"),
            "run",
            str(pipeline),
            "--state",
            str(self.workdir / f"{destination}.db"),
        ]
        result = measure(f"bizon > {destination}", argv, self.records, self.env)
        self.check(destination)
        return result

    def dagster(self) -> Measure:
        home = self.workdir / "dagster_home"
        home.mkdir(exist_ok=True)
        env = {**self.env, "DAGSTER_HOME": str(home)}
        materialize = [sys.executable, str(HERE / "dagster_materialize.py")]
        warm_up = [*materialize, str(DUMMY_EXAMPLE)]
        subprocess.run(warm_up, env=env, cwd=self.workdir, check=True, capture_output=True)
        result = measure(
            "dagster > file", [*materialize, str(self.pipeline("file"))], self.records, env
        )
        self.check("file")
        return result

    def pipeline(self, destination: str) -> Path:
        configs = {
            "file": f"{{path: '{self.workdir}/bizon.jsonl'}}",
            "duckdb": f"{{path: '{self.workdir}/bench.duckdb', table: records}}",
            "postgres": "{{host: {}, port: {}, database: {}, user: {}, password: {}, "
            "table: records}}".format(*self.postgres_params()),
        }
        path = self.workdir / f"{destination}.yml"
        path.write_text(
            f"name: bench_{destination}\n"
            f"source: {{name: bench, stream: records, base_url: '{self.url}'}}\n"
            f"destination: {{name: {destination}, config: {configs[destination]}}}\n"
        )
        return path

    def postgres_params(self) -> tuple:
        server = self.postgres
        if server is None:
            return ("", "", "", "", "")
        return (server.host, server.port, server.database, server.user, server.password)

    def check(self, destination: str) -> None:
        """Every record arrived: the benchmark measures a correct load or nothing."""
        if destination == "file":
            with open(self.workdir / "bizon.jsonl", "rb") as written:
                count = sum(1 for _ in written)
            (self.workdir / "bizon.jsonl").unlink()
        elif destination == "duckdb":
            import duckdb

            with duckdb.connect(str(self.workdir / "bench.duckdb"), read_only=True) as db:
                count = db.execute('SELECT count(*) FROM "records"').fetchone()[0]
        else:
            import psycopg

            with psycopg.connect(**self.postgres.params()) as db:  # type: ignore[union-attr]
                count = db.execute('SELECT count(*) FROM "records"').fetchone()[0]
        if count != self.records:
            raise SystemExit(f"{destination} holds {count} records, expected {self.records}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--subjects", nargs="+", choices=SUBJECTS, default=list(SUBJECTS))
    args = parser.parse_args()
    peaks: dict[str, list[float]] = {}
    with ExitStack() as stack:
        postgres = None
        if "postgres" in args.subjects:
            from bizon_core.testing.postgres import temporary_postgres

            postgres = stack.enter_context(temporary_postgres(durable=True))
        for records in args.records:
            with tempfile.TemporaryDirectory() as tmp, page_server(records, args.page_size) as url:
                run = Run(records, url, Path(tmp), postgres)
                results = [
                    run.bare() if s == "bare" else run.dagster() if s == "dagster" else run.bizon(s)
                    for s in args.subjects
                ]
            report(records, args.page_size, results)
            for m in results:
                peaks.setdefault(m.name, []).append(m.peak_rss_mb)
    if len(args.records) > 1:
        print(f"\npeak RSS at {args.records[-1]:,} vs {args.records[0]:,} records:")
        for name, values in peaks.items():
            print(f"  {name:<16} {values[-1] / values[0] - 1:+.1%}")
    return 0


def report(records: int, page_size: int, results: list[Measure]) -> None:
    print(f"\n{records:,} records, {page_size:,} per page")
    print(f"{'subject':<16} {'records/s':>12} {'seconds':>9} {'CPU s':>7} {'peak RSS MB':>12}")
    for m in results:
        print(
            f"{m.name:<16} {m.rate:>12,.0f} {m.seconds:>9.2f} {m.cpu_seconds:>7.2f} "
            f"{m.peak_rss_mb:>12.1f}"
        )
    by_name = {m.name: m for m in results}
    bare, file, dagster = (by_name.get(n) for n in ("bare loop", "bizon > file", "dagster > file"))
    if bare and file:
        print(f"bizon > file / bare loop: {file.rate / bare.rate:.2f} of the throughput")
    if file and dagster:
        print(
            f"dagster / bizon: {dagster.seconds / file.seconds:.2f} of the wall time, "
            f"{dagster.peak_rss_mb - file.peak_rss_mb:+.1f} MB peak RSS"
        )


if __name__ == "__main__":
    sys.exit(main())
