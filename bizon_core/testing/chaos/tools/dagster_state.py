"""Print, as JSON, what the Dagster instance of `$DAGSTER_HOME` knows of one asset's stream.

    DAGSTER_HOME=... python dagster_state.py ASSET/KEY

Run in its own process by the chaos harness, which does not import Dagster itself:
`{"materializations": [{"run_id", "resumed_after_records"}], "checkpoint": {"records",
"run_id"} | null, "runs": {run_id: status}}`, oldest materialization first; `checkpoint` is
the newest checkpoint observation when it is newer than the latest materialization.
"""

import json
import sys

from dagster import AssetKey, DagsterInstance

CHECKPOINT = "bizon/checkpoint"
RESUMED = "bizon/resumed_after_records"


def _value(metadata, key):
    entry = metadata.get(key)
    return None if entry is None else entry.value


def main() -> None:
    key = AssetKey.from_user_string(sys.argv[1])
    with DagsterInstance.get() as instance:
        materializations = instance.fetch_materializations(key, limit=1000).records
        observations = instance.fetch_observations(key, limit=1).records
        checkpoint = None
        if observations:
            entry = observations[0].event_log_entry
            metadata = entry.asset_observation.metadata
            newer = not materializations or entry.timestamp > materializations[0].timestamp
            if newer and CHECKPOINT in metadata:
                checkpoint = {
                    "records": metadata[CHECKPOINT].value["records"],
                    "run_id": entry.run_id,
                }
        report = {
            "materializations": [
                {
                    "run_id": record.run_id,
                    "resumed_after_records": _value(
                        record.event_log_entry.asset_materialization.metadata, RESUMED
                    ),
                }
                for record in reversed(materializations)
            ],
            "checkpoint": checkpoint,
            "runs": {run.run_id: run.status.value for run in instance.get_runs()},
        }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
