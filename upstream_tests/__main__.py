# Licensed under the Apache License, Version 2.0.
"""``python -m upstream_tests [run|workspace DIR|export DIR]``; see :mod:`upstream_tests`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from upstream_tests.runner import UpstreamTestsError, main_run
from upstream_tests.workspace import create_workspace, export_workspace, patch_name

DEFAULT_WORK = Path(".tmp/upstream-tests")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m upstream_tests", description=__doc__)
    parser.add_argument(
        "--python",
        type=Path,
        default=Path(sys.executable),
        help="the patched venv's interpreter (default: this one)",
    )
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="scratch and cache directory")
    commands = parser.add_subparsers(dest="command")
    run = commands.add_parser("run", help="stock vs patched, test by test (the default)")
    run.add_argument(
        "--stock-python",
        type=Path,
        help="a stock Airflow's interpreter (default: a hard-linked copy of --python's venv, patch reverted)",
    )
    run.add_argument(
        "--jobs", type=int, default=3, help="pytest runs at once (default 3; the client tests mostly wait)"
    )
    run.add_argument("--file", action="append", default=[], help="only this file (repeatable)")
    run.add_argument("pytest_args", nargs="*", help="passed on to pytest, after --")
    workspace = commands.add_parser("workspace", help="lay out the test diff (or --source) as a git tree")
    workspace.add_argument("directory", type=Path)
    workspace.add_argument("--source", action="store_true", help="the source diff instead of the test diff")
    export = commands.add_parser("export", help="write a workspace's git diff back into its diff")
    export.add_argument("directory", type=Path)
    export.add_argument("--source", action="store_true", help="the workspace holds the source diff")
    export.add_argument("--output", type=Path, help="write here instead of the shipped diff")
    args = parser.parse_args(argv)
    # Absolute (the test files run with their tree as the working directory), but not resolved: a
    # venv's python is a symlink, and resolving it would leave the venv.
    args.python = args.python.absolute()

    if args.command in (None, "run"):
        return main_run(
            args.python,
            args.work.resolve(),
            stock_python=getattr(args, "stock_python", None),
            jobs=getattr(args, "jobs", 3),
            files=getattr(args, "file", []),
            extra_args=getattr(args, "pytest_args", []),
        )
    try:
        if args.command == "workspace":
            suite = create_workspace(
                args.python, args.directory, args.work.resolve() / "sdists", source=args.source
            )
            print(
                f"{args.directory}: release files committed, {patch_name(suite, source=args.source)} "
                f"applied. Edit, then `python -m upstream_tests export "
                f"{'--source ' if args.source else ''}{args.directory}`."
            )
        else:
            print(f"wrote {export_workspace(args.python, args.directory, args.output, source=args.source)}")
    except UpstreamTestsError as err:
        print(f"upstream tests: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
