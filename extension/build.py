"""Build steps for `make`: the extension's install and update scripts, and the package's build facts.

    build.py sql --version V [--from RELEASE] --sql-dir sql --bindir B --python-dir D --out FILE
    build.py release-manifest --version V --sql-dir sql
    build.py build-info --out FILE --version V --install-method M ...

What goes into the scripts, and the rules a released migration obeys, are in
migrations.py beside this file.

Kept in Python rather than sed because the substituted values are quoted for
the language they land in (Python literals), never pasted raw.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import migrations


def py_literal(value: str) -> str:
    return repr(value)


def build_sql(args: argparse.Namespace) -> None:
    python_dir_from_bindir = os.path.relpath(args.python_dir, args.bindir)
    substitutions = {
        "@EXTVERSION@": args.version,
        "@PYTHON_DIR@": py_literal(args.python_dir),
        "@PYTHON_DIR_FROM_BINDIR@": py_literal(python_dir_from_bindir),
    }
    sources = migrations.read_sources(Path(args.sql_dir))
    text = migrations.script(sources, args.version, args.from_version, substitutions)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as out:
        out.write(text)


def release_manifest(args: argparse.Namespace) -> None:
    """Freezes this version's migrations: run once, when the version ships."""
    sources = migrations.read_sources(Path(args.sql_dir))
    path = Path(args.sql_dir) / "releases" / f"{args.version}.sha256"
    if path.exists():
        raise migrations.BuildRefused(f"{path} exists: telemetry {args.version} has shipped already")
    migrations.check(sources, args.version)
    path.write_text(migrations.manifest(sources), encoding="utf-8")
    print(f"wrote {path}")


def build_info(args: argparse.Namespace) -> None:
    lines = [
        '"""Facts fixed when `make` built this copy of the package (generated)."""',
        f"VERSION = {py_literal(args.version)}",
        f"INSTALL_METHOD = {py_literal(args.install_method)}",
        f"BUILD_OS_NAME = {py_literal(args.build_os_name)}",
        f"BUILD_OS_VERSION = {py_literal(args.build_os_version)}",
        f"DEFAULT_ENDPOINT = {py_literal(args.endpoint)}",
        f"DEFAULT_LEVEL = {py_literal(args.default_level)}",
    ]
    with open(args.out, "w", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")


def add_required(parser: argparse.ArgumentParser, *flags: str) -> None:
    for flag in flags:
        parser.add_argument(flag, required=True)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    sql = commands.add_parser("sql")
    add_required(sql, "--version", "--bindir", "--python-dir", "--out", "--sql-dir")
    sql.add_argument("--from", dest="from_version", help="the earlier release this update script starts from")
    sql.set_defaults(run=build_sql)
    manifest = commands.add_parser("release-manifest")
    add_required(manifest, "--version", "--sql-dir")
    manifest.set_defaults(run=release_manifest)
    info = commands.add_parser("build-info")
    add_required(info, "--out", "--version", "--install-method", "--build-os-name", "--build-os-version", "--endpoint")
    info.add_argument("--default-level", choices=("basic", "off"), default="basic")
    info.set_defaults(run=build_info)
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except migrations.BuildRefused as exc:
        sys.exit(f"telemetry: build refused:\n{exc}")


if __name__ == "__main__":
    main(sys.argv[1:])
