"""`python -m telemetry_collector ...`: see telemetry_collector.cli."""

import sys

from telemetry_collector.cli import main

sys.exit(main())
