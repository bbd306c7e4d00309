"""Headless Chromium (Debian's `chromium` package) for the fleet page's tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

FLAGS = [
    "--headless",
    "--no-sandbox",  # tests run as root
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-extensions",
    "--virtual-time-budget=10000",
]


def chromium_binary() -> str:
    found = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise RuntimeError("headless Chromium is needed: apt-get install chromium")
    return found


def run_chromium(url: str, *extra: str) -> str:
    """Chromium's stdout for `url` with a fresh profile (e.g. --dump-dom)."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        result = subprocess.run(
            [chromium_binary(), *FLAGS, f"--user-data-dir={profile}", *extra, url],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
    if result.returncode != 0:
        raise RuntimeError(f"chromium failed ({result.returncode}): {result.stderr[-2000:]}")
    return result.stdout


def dump_dom(url: str) -> str:
    return run_chromium(url, "--dump-dom")


def screenshot(url: str, path: Path, size: str = "1100,1000") -> None:
    run_chromium(url, f"--screenshot={path}", f"--window-size={size}", "--hide-scrollbars")
