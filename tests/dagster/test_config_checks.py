"""What Dagster would reject in a pipeline YAML, `bizon check` refuses first, naming the file."""

from __future__ import annotations

import dagster as dg
import pytest
import yaml

from bizon_core.cron import check_cron
from bizon_core.errors import ConfigError
from bizon_dagster import build_definitions

# Expressions on both sides of what Dagster accepts.
CRON_CORPUS = [
    "0 * * * *",
    "*/15 * * * *",
    "0 0 * * 0",
    "0 0 * * 7",
    "0 0 1,15 * *",
    "1-5/2,7 * * * *",
    "5/15 * * * *",
    "0 9-17 * * mon-fri",
    "0 0 * jan-mar/2 *",
    "0 0 L * *",
    "0 0 1,L * *",
    "0 0 ? * *",
    "0 0 * * ?",
    "0 0 * * 1#2",
    "0 0 * * mon#5",
    "0 0 29 2 *",
    "0 0 29,30 2 *",
    " 0\t* * * * ",
    "00 * * * *",
    "@hourly",
    "@daily",
    "@midnight",
    "@weekly",
    "@monthly",
    "@yearly",
    "@annually",
    "0 0 * * 8",
    "0 0 32 * *",
    "0 24 * * *",
    "60 * * * *",
    "0 0 * 13 *",
    "0 0 * 0 *",
    "0 0 0 * *",
    "-1 * * * *",
    "*/0 * * * *",
    "1, 2 * * * *",
    "* * * *",
    "* * * * * *",
    "* * * * * * *",
    "",
    "H * * * *",
    "~ * * * *",
    "0 0 1W * *",
    "0 0 L-2 * *",
    "0 0 * * L",
    "0 0 * * 5L",
    "0 0 * * 1#6",
    "0 0 * * 1#0",
    "0 0 * * Monday",
    "0 0 30 2 *",
    "0 0 31 2 *",
    "@reboot",
    "@every 5m",
    "@HOURLY",
    "every hour",
]


def dagster_accepts(cron: str, timezone: str = "UTC") -> bool:
    try:
        dg.ScheduleDefinition(
            name="probe", cron_schedule=cron, job_name="job", execution_timezone=timezone
        )
    except Exception:
        return False
    return True


def bizon_accepts(cron: str) -> bool:
    try:
        check_cron(cron)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("cron", CRON_CORPUS)
def test_the_cron_check_agrees_with_dagster(cron):
    assert bizon_accepts(cron) == dagster_accepts(cron)


@pytest.mark.parametrize("cron", ["5-3 * * * *", "0 0 * * fri-mon", "0 0 30,31 2 *"])
def test_the_cron_check_is_stricter_where_dagster_accepts_what_cannot_be_meant(cron):
    assert dagster_accepts(cron) and not bizon_accepts(cron)


@pytest.mark.parametrize(
    ("schedule", "field", "message"),
    [
        ({"cron": "0 24 * * *"}, "schedule.cron", "hour 24 is out of range 0-23"),
        ({"cron": "every hour"}, "schedule.cron", "it needs 5 fields"),
        ({"cron": "0 0 31 2 *"}, "schedule.cron", "February has no day 30 or 31"),
        (
            {"cron": "0 * * * *", "timezone": "Mars/Olympus"},
            "schedule.timezone",
            "'Mars/Olympus' is not a known IANA time zone",
        ),
        ({"cron": "0 * * * *", "timezone": "../etc"}, "schedule.timezone", "not a known IANA"),
    ],
)
def test_a_bad_schedule_fails_bizon_check_naming_the_file_and_field(
    make_pipeline, cli, tmp_path, schedule, field, message
):
    with pytest.raises(ConfigError):
        make_pipeline(schedule=schedule)
    path = tmp_path / "paged_sync.yml"
    code, out, err = cli("check", path)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"error: {path}: {field}: ") and message in err

    directory = tmp_path / "pipelines"
    directory.mkdir()
    (directory / "scheduled.yml").write_text(path.read_text())
    with pytest.raises(ConfigError, match=rf"scheduled\.yml: {field}: .*{message[:20]}"):
        build_definitions(directory)


def test_a_good_schedule_passes_the_check_and_loads_in_dagster(make_pipeline, tmp_path):
    make_pipeline(
        directory=tmp_path / "pipelines",
        schedule={"cron": "30 6 * * mon-fri", "timezone": "America/New_York"},
    )
    (schedule,) = build_definitions(tmp_path / "pipelines").schedules
    assert (schedule.cron_schedule, schedule.execution_timezone) == (
        "30 6 * * mon-fri",
        "America/New_York",
    )


def test_two_pipelines_with_one_name_are_refused_naming_both_files(make_pipeline, tmp_path):
    directory = tmp_path / "pipelines"
    make_pipeline(name="shared", directory=directory, schedule={"cron": "0 * * * *"})
    config = yaml.safe_load((directory / "shared.yml").read_text())
    other = directory / "other.yml"  # other assets, the same pipeline name
    other.write_text(yaml.safe_dump({**config, "asset_key_prefix": ["copy"]}))
    with pytest.raises(ConfigError) as error:
        build_definitions(directory)
    message = str(error.value)
    assert message == (
        f"{directory / 'shared.yml'}: name: pipeline shared is also defined by {other}; "
        "pipeline names must be unique"
    )
