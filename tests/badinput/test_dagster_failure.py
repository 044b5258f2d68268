"""Under Dagster, a malformed API answer fails the run with one clear line in its failure event."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import yaml

from bizon_core.testing import FakeApiServer, Fault
from bizon_dagster import bizon_assets


def test_a_failed_run_shows_its_error_as_one_line_in_the_failure_event(
    server: FakeApiServer, tmp_path: Path
):
    output = tmp_path / "out" / "users.jsonl"
    path = tmp_path / "dg_badinput.yml"
    config = {
        "name": "dg_badinput",
        "source": {"name": "paged", "stream": "users", "base_url": server.url},
        "destination": {"name": "file", "config": {"path": str(output)}},
        # Speed only: a step retry would wait 30 s; the failure event is built the same way.
        "retries": {"enabled": False},
    }
    path.write_text(yaml.safe_dump(config))
    server.inject(Fault(kind="non_json", path="/cursor/users", nth=2))

    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = dg.materialize([bizon_assets(path)], instance=instance, raise_on_error=False)
        records = instance.get_records_for_run(result.run_id).records

    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    data = failure.event_specific_data
    description = data.user_failure_data.description
    assert "\n" not in description and "Traceback" not in description
    for fragment in ("pipeline dg_badinput", "source 'paged' stream 'users'", "page 2", "not JSON"):
        assert fragment in description
    # The error Dagster shows first is that same line, not the last line of a traceback.
    (first_line,) = data.error.message.splitlines()
    assert first_line.endswith(f"{data.error.cls_name}: {description}")
    errors = [
        record.event_log_entry.user_message
        for record in records
        if record.event_log_entry.level >= 40 and record.event_log_entry.dagster_event is None
    ]
    assert any("page 2" in m and "\n" not in m for m in errors), errors
    assert not output.exists()
    assert not result.asset_materializations_for_node(result.dagster_run.job_name)
