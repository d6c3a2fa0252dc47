# Licensed under the Apache License, Version 2.0.
"""``airflow-resumable``: the provider's command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _cmd_version(args: argparse.Namespace) -> int:
    from airflow.providers.resumable import __version__

    print(f"airflow-provider-resumable {__version__}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, one sub-command per job."""
    parser = argparse.ArgumentParser(
        prog="airflow-resumable",
        description="Resumable operators for Apache Airflow: core patch, diagnostics and drills.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    version = commands.add_parser("version", help="print this provider's version")
    version.set_defaults(func=_cmd_version)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``airflow-resumable`` console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
