"""The `defs` that `workspace.yaml` loads: every pipeline YAML of `$BIZON_PIPELINES_DIR`.

Without `BIZON_PIPELINES_DIR`, the dummy example pipelines, which run offline.
"""

from bizon_dagster.loader import build_definitions

defs = build_definitions()
