"""Tests of the collector service (python/telemetry_collector)."""

import sys
from pathlib import Path

# The collector is imported from the source tree, as `python -m` runs it with PYTHONPATH=python.
_PYTHON_DIR = str(Path(__file__).resolve().parents[2] / "python")
if _PYTHON_DIR not in sys.path:
    sys.path.insert(0, _PYTHON_DIR)
