"""`bizon new source`: every choice generates a ruff-clean connector whose own contract test
passes at once; a name or folder that exists is refused, with nothing written."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import pytest

from bizon_core.scaffold.choices import AUTHS, PAGINATIONS

BIN = Path(sys.executable).parent
PROJECT_CONFIG = Path(__file__).resolve().parents[2] / "pyproject.toml"
#: Each auth paired with one paging, so that every choice of both runs once.
RUN = list(zip(AUTHS, PAGINATIONS, strict=True))


def generate(cli, into: Path, auth: str, pagination: str) -> Path:
    name = f"s_{auth}_{pagination}"
    code, out, err = cli(
        "new", "source", name, "--auth", auth, "--pagination", pagination, "--into", into
    )
    assert code == 0, err
    assert f"wrote {into / 'sources' / name / 'src' / 'source.py'}" in out
    return into / "sources" / name


def test_every_combination_is_ruff_clean(cli, tmp_path):
    for auth, pagination in itertools.product(AUTHS, PAGINATIONS):
        generate(cli, tmp_path, auth, pagination)
    for command in (["format", "--check"], ["check"]):
        # Under the project's settings, as `make test` checks connectors/.
        argv = [BIN / "ruff", *command, "--config", PROJECT_CONFIG, tmp_path]
        ruff = subprocess.run(argv, capture_output=True, text=True)
        assert ruff.returncode == 0, ruff.stdout + ruff.stderr


def test_each_choice_generates_a_connector_whose_test_passes(cli, tmp_path):
    for auth, pagination in RUN:
        generate(cli, tmp_path, auth, pagination)
    run = subprocess.run(
        [BIN / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", tmp_path / "sources"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    summary = run.stdout.strip().splitlines()[-1]
    assert "failed" not in summary and "error" not in summary, summary
    # Each connector: the streams and examples rules, then 6 rules for each of 2 streams.
    assert f"{len(RUN) * 14} passed" in summary, summary


def test_the_new_source_is_listed_and_its_example_validates(cli, tmp_path, monkeypatch):
    folder = generate(cli, tmp_path, "bearer", "cursor")
    monkeypatch.setenv("BIZON_CONNECTORS_PATH", str(tmp_path))
    code, out, _ = cli("source", "list")
    assert code == 0 and any(
        line.split()[:3] == ["s_bearer_cursor", "users,orders", "yes"] for line in out.splitlines()
    )
    monkeypatch.setenv("S_BEARER_CURSOR_TOKEN", "t")
    code, out, _ = cli("check", folder / "config" / "s_bearer_cursor.example.yml")
    assert "config OK (s_bearer_cursor -> duckdb)" in out  # the connection is the real API's


def test_an_existing_folder_is_never_overwritten(cli, tmp_path):
    folder = generate(cli, tmp_path, "none", "offset")
    source = folder / "src" / "source.py"
    source.write_text("# mine\n")
    code, _, err = cli("new", "source", "s_none_offset", "--into", tmp_path)
    assert code == 2 and "already exists; nothing was written" in err
    assert source.read_text() == "# mine\n"


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("Acme", "use lowercase letters"),
        ("1acme", "use lowercase letters"),
        ("acme-crm", "use lowercase letters"),
        ("class", "not a Python keyword"),
        ("dummy", "a source of that name exists in"),
    ],
)
def test_a_bad_name_is_refused_with_nothing_written(cli, tmp_path, name, fragment):
    code, _, err = cli("new", "source", name, "--into", tmp_path)
    assert code == 2 and fragment in err and err.count("error: ") == 1, err
    assert not (tmp_path / "sources").exists()


def test_a_bad_choice_is_a_usage_error(cli, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        cli("new", "source", "acme", "--auth", "token", "--into", tmp_path)
    assert exit_.value.code == 2
