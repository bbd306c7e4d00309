"""pgspot (Timescale's linter for extension scripts) on every script the build makes.

    lint_sql.py --version V --sql-dir sql        (run by `make lint`)

Lints the install script, the update script from each earlier release, and each
migration as those scripts run it: a migration's statements reach the server
through EXECUTE in its guard, which pgspot cannot see into, so it is also linted
on its own after the same PINNED_SEARCH_PATH.  Fails on any error, warning,
unknown or crash pgspot reports, except the findings JUSTIFIED lists, each with
the reason it is safe.  Needs no PostgreSQL: the paths the scripts name are placeholders.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import migrations

# Only in the scripts, for the Python loader; any path does for linting.
PLACEHOLDERS = {"@PYTHON_DIR@": repr("/lint/python"), "@PYTHON_DIR_FROM_BINDIR@": repr("../python")}

# The one warning left (PS002), on each of our own functions (pgspot writes @extschema@
# as "extschema"): CREATE OR REPLACE FUNCTION, which every install and update runs.
# pgspot warns because a role could make the function first.  PostgreSQL (15 and
# later; CVE-2022-2625) refuses that in an extension script when the function exists
# and is not the extension's, so a look-alike makes the command fail, never run
# (tests/extension/upgrade/test_script_hijack.py); and _telemetry is made by 001-identity.sql's
# CREATE SCHEMA (which fails if it exists), only its owner may create in it.
JUSTIFIED = {"PS002": re.compile(r"(_telemetry|extschema)\.\w+\(.*\)")}
# pgspot reads SQL and PL/pgSQL bodies only.  Every plpython3u function pins its
# search_path (tests/extension/test_security.py) and builds no SQL from values.
IGNORED_LANGUAGES = ["plpython3u"]

FINDING = re.compile(r"^(PS\d{3}): [^:]+: (.*) at line \d+$")
SUMMARY = re.compile(r"^\s*Errors: \d+ Warnings: \d+ Unknown: \d+\s*$")


def scripts(sql_dir: Path, version: str, out: Path) -> list[Path]:
    """Every script `make` builds, and every migration as a script runs it, written into `out`."""
    sources = migrations.read_sources(sql_dir)
    substitutions = {"@EXTVERSION@": version, **PLACEHOLDERS}
    written: list[Path] = []
    for start in [None, *migrations.earlier_releases(sources, version)]:
        name = f"telemetry--{start}--{version}.sql" if start else f"telemetry--{version}.sql"
        written.append(out / name)
        written[-1].write_text(migrations.script(sources, version, start, substitutions), encoding="utf-8")
    for migration in sources.migrations:
        body = (sources.incremental_dir / migration).read_text(encoding="utf-8")
        written.append(out / f"as-run-{migration}")
        written[-1].write_text(migrations.PINNED_SEARCH_PATH + body, encoding="utf-8")
    return written


def judged(output: str) -> tuple[int, list[str]]:
    """How many of pgspot's findings JUSTIFIED covers, and its other lines but the summary."""
    justified, problems = 0, []
    for line in output.splitlines():
        found = FINDING.match(line)
        if found and (rule := JUSTIFIED.get(found.group(1))) and rule.fullmatch(found.group(2)):
            justified += 1
        elif line.strip() and not SUMMARY.match(line):
            problems.append(line)
    return justified, problems


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--version", required=True)
    parser.add_argument("--sql-dir", required=True, type=Path)
    args = parser.parse_args(argv)
    failed = False
    with tempfile.TemporaryDirectory(prefix="telemetry-lint-") as out:
        for path in scripts(args.sql_dir, args.version, Path(out)):
            ignore = [arg for lang in IGNORED_LANGUAGES for arg in ("--ignore-lang", lang)]
            result = subprocess.run(
                [sys.executable, "-m", "pgspot", *ignore, str(path)], capture_output=True, text=True, check=False
            )
            justified, problems = judged(result.stdout + result.stderr)
            print(f"pgspot {path.name}: {len(problems)} to fix, {justified} justified (own functions replaced)")
            for problem in problems:
                print(f"    {problem}")
            failed = failed or bool(problems)
    if failed:
        sys.exit("pgspot: fix these, or, when safe, justify them in extension/lint_sql.py")


if __name__ == "__main__":
    main(sys.argv[1:])
