"""Loaded by every Python process the chaos harness starts (this folder is on PYTHONPATH).

Arms the kill that `BIZON_CHAOS_KILL` describes; does nothing without it.
"""

import os

if os.environ.get("BIZON_CHAOS_KILL"):
    from bizon_core.testing.chaos.inject import install_from_env

    install_from_env()
