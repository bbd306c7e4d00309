"""Released migrations, and the install and update scripts made from sql/.

sql/incremental/  migrations: each runs once per database, recorded in the
                  ledger _telemetry.migrations (sql/ledger.sql).
sql/idempotent/   definitions (functions, views): run on every install and update.
sql/releases/     one manifest per release, <version>.sha256, listing the
                  migrations it shipped with their checksums, in sha256sum's
                  format (`cd sql/incremental && sha256sum -c ../releases/0.1.0.sha256`).

A migration that has shipped is frozen: the build refuses to make any script
while a released file differs from its manifest.  Every script, the install
script and `telemetry--<release>--<version>.sql` from each earlier release, is
made from the same sources: the migrations the starting point lacks, each in a
guard that skips it when the ledger says it ran, then the ledger records them
(and, for a release that kept no ledger, the files that release ran), then the
idempotent files.

Each of those parts runs with search_path pinned to pg_catalog, pg_temp
(PINNED_SEARCH_PATH): the migrations that shipped are frozen, so the context
they run in is what keeps their unqualified operators and functions to
pg_catalog's.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

MIGRATION_NAME = re.compile(r"^[0-9]{3}-[a-z0-9_-]+\.sql$")
VERSION = re.compile(r"^[0-9]+(\.[0-9]+)*$")
# Dollar-quote tags of the guard; a migration may not contain them.
BLOCK_TAG = "$telemetry_migration$"
BODY_TAG = "$telemetry_migration_sql$"
# CREATE EXTENSION and ALTER EXTENSION UPDATE run a script with search_path set to
# the extension's schema (public by default) and pg_temp.  An operator or function
# some role created there that fits the arguments exactly (public.=(oid, regclass)
# beats pg_catalog.=(oid, oid)) would be chosen, and run as the superuser.  So
# every part of a script starts with this.  LOCAL: PostgreSQL restores the
# caller's search_path when the script ends (a plain SET would outlive it).  The
# scripts name @extschema@ and _telemetry wherever they create or use our objects,
# so nothing else is needed on the path.
PINNED_SEARCH_PATH = "SET LOCAL search_path = pg_catalog, pg_temp;\n"


class BuildRefused(Exception):
    """The sources break a release rule; the message says what to do instead."""


def version_key(version: str) -> tuple[int, ...]:
    if not VERSION.match(version):
        raise BuildRefused(f"{version!r} is not a release version (digits and dots, e.g. 0.2.0)")
    return tuple(int(part) for part in version.split("."))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class Sources:
    """The migrations (name -> checksum, in run order) and the releases' manifests."""

    sql_dir: Path
    migrations: dict[str, str]
    releases: dict[str, dict[str, str]]

    @property
    def incremental_dir(self) -> Path:
        return self.sql_dir / "incremental"

    def idempotent_files(self) -> list[Path]:
        return sorted((self.sql_dir / "idempotent").glob("*.sql"))

    def ledger_file(self) -> Path:
        return self.sql_dir / "ledger.sql"


def read_manifest(path: Path) -> dict[str, str]:
    files: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        checksum, _, name = line.partition("  ")
        if not re.fullmatch(r"[0-9a-f]{64}", checksum) or not MIGRATION_NAME.match(name):
            raise BuildRefused(f"{path}:{number}: expected '<sha256>  <migration file name>', got {line!r}")
        files[name] = checksum
    return files


def read_sources(sql_dir: Path) -> Sources:
    incremental = sql_dir / "incremental"
    migrations: dict[str, str] = {}
    for path in sorted(incremental.glob("*.sql")):
        if not MIGRATION_NAME.match(path.name):
            raise BuildRefused(f"{path}: a migration's name is NNN-words.sql (lower case, digits, - and _)")
        migrations[path.name] = sha256(path)
    releases = {
        path.name.removesuffix(".sha256"): read_manifest(path)
        for path in sorted((sql_dir / "releases").glob("*.sha256"))
    }
    for release in releases:
        version_key(release)
    return Sources(sql_dir, migrations, releases)


def check(sources: Sources, version: str) -> None:
    """Refuses sources that would make a database differ by the path that got it there."""
    problems: list[str] = []
    released: dict[str, tuple[str, str]] = {}  # name -> (checksum, first release)
    for release in sorted(sources.releases, key=version_key):
        if version_key(release) > version_key(version):
            problems.append(f"release {release} is newer than default_version {version} in telemetry.control")
        for name, checksum in sources.releases[release].items():
            released.setdefault(name, (checksum, release))
    for name, (checksum, release) in released.items():
        path = sources.incremental_dir / name
        current = sources.migrations.get(name)
        if current is None:
            problems.append(f"{path} shipped in telemetry {release} and is gone: restore it from the release")
        elif current != checksum:
            problems.append(
                f"{path} shipped in telemetry {release} and has changed (sha256 {current}, released {checksum}). "
                "A released migration is frozen: restore it and put the change in a new migration, "
                f"sql/incremental/NNN-<what>.sql, numbered after {max(released)}"
            )
    unreleased = [name for name in sources.migrations if name not in released]
    if released:
        last = max(released)
        problems += [
            f"{sources.incremental_dir / name} is new but sorts before {last}, which shipped: number it after {last}"
            for name in unreleased
            if name < last
        ]
    if version in sources.releases and unreleased:
        problems.append(
            f"telemetry {version} has shipped (sql/releases/{version}.sha256) and cannot gain migrations "
            f"({', '.join(unreleased)}): raise default_version in telemetry.control"
        )
    for name in sources.migrations:
        text = (sources.incremental_dir / name).read_text(encoding="utf-8")
        if BLOCK_TAG[:-1] in text:
            problems.append(f"{sources.incremental_dir / name} contains {BLOCK_TAG[:-1]}, reserved for the guard")
    if problems:
        raise BuildRefused("\n".join(problems))


def earlier_releases(sources: Sources, version: str) -> list[str]:
    return sorted((r for r in sources.releases if version_key(r) < version_key(version)), key=version_key)


def _substitute(text: str, substitutions: Mapping[str, str]) -> str:
    for placeholder, value in substitutions.items():
        text = text.replace(placeholder, value)
    return text


def guarded_migration(name: str, body: str) -> str:
    """The migration, run unless the ledger already records it.

    EXECUTE runs the file's statements one after another, in the script's
    transaction, so what they create belongs to the extension as usual.  No
    ledger yet means no migration has been recorded: a fresh install, or a
    release that kept none (whose own files the script does not contain).
    """
    return (
        f"DO {BLOCK_TAG}\n"
        "BEGIN\n"
        "    IF pg_catalog.to_regclass('_telemetry.migrations') IS NOT NULL THEN\n"
        "        IF EXISTS (SELECT FROM _telemetry.migrations\n"
        f"                    WHERE name OPERATOR(pg_catalog.=) {sql_literal(name)}) THEN\n"
        "            RETURN;\n"
        "        END IF;\n"
        "    END IF;\n"
        f"    EXECUTE {BODY_TAG}\n{body}{'' if body.endswith(chr(10)) else chr(10)}{BODY_TAG};\n"
        "END\n"
        f"{BLOCK_TAG};\n"
    )


def record(files: Mapping[str, str], version: str, applied_now: bool) -> str:
    if not files:
        return ""
    applied_at = "pg_catalog.now()" if applied_now else "NULL"
    rows = ",\n    ".join(
        f"({sql_literal(name)}, {sql_literal(checksum)}, {applied_at}, {sql_literal(version)})"
        for name, checksum in files.items()
    )
    return (
        "INSERT INTO _telemetry.migrations (name, checksum, applied_at, applied_by_version) VALUES\n"
        f"    {rows}\n"
        "ON CONFLICT (name) DO NOTHING;\n"
    )


def script(sources: Sources, version: str, from_version: str | None, substitutions: Mapping[str, str]) -> str:
    """The install script (from_version None) or the update script from an earlier release."""
    check(sources, version)
    if from_version is None:
        title = f"telemetry {version}"
        already: dict[str, str] = {}
    else:
        if from_version not in earlier_releases(sources, version):
            raise BuildRefused(f"no earlier release {from_version} (releases: {', '.join(sources.releases)})")
        title = f"telemetry {from_version} -> {version}"
        already = sources.releases[from_version]
    to_run = {name: checksum for name, checksum in sources.migrations.items() if name not in already}
    command = "CREATE EXTENSION telemetry CASCADE" if from_version is None else "ALTER EXTENSION telemetry UPDATE"
    parts = [
        f"-- {title}: generated by extension/build.py from sql/; do not edit.\n"
        f'\\echo Use "{command}" to load this file. \\quit\n'
    ]
    for name in to_run:
        body = _substitute((sources.incremental_dir / name).read_text(encoding="utf-8"), substitutions)
        parts.append(
            f"\n-- ---- sql/incremental/{name} (sha256 {to_run[name]}) ----\n"
            f"{PINNED_SEARCH_PATH}{guarded_migration(name, body)}"
        )
    ledger = sources.ledger_file()
    ledger_text = _substitute(ledger.read_text(encoding="utf-8"), substitutions)
    parts.append(f"\n-- ---- sql/{ledger.name} ----\n{PINNED_SEARCH_PATH}{ledger_text}")
    if from_version is not None:
        parts.append(f"-- What {from_version} ran (a release before the ledger did not record it).\n")
        parts.append(record(already, from_version, applied_now=False))
    parts.append(record(to_run, version, applied_now=True))
    for path in sources.idempotent_files():
        text = _substitute(path.read_text(encoding="utf-8"), substitutions)
        parts.append(f"\n-- ---- sql/idempotent/{path.name} ----\n{PINNED_SEARCH_PATH}{text}")
    return "".join(parts)


def manifest(sources: Sources) -> str:
    """The manifest of a release made from these sources (sha256sum's format)."""
    return "".join(f"{checksum}  {name}\n" for name, checksum in sources.migrations.items())
