# Licensed under the Apache License, Version 2.0.
"""``python -m bench`` (what ``make bench`` runs): race upstream vs ours and write docs/benchmarks.md."""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "latest.json"
PAGE = ROOT / "docs" / "benchmarks.md"
CHART = ROOT / "docs" / "_static" / "benchmarks.png"


def _machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    except OSError:
        mem_kib = 0
    return f"{os.cpu_count()} x {model}, {mem_kib / 1024 / 1024:.0f} GiB RAM, {platform.system()} {platform.release()}"


def _versions() -> str:
    names = [
        "apache-airflow-core",
        "apache-airflow-providers-databricks",
        "apache-airflow-providers-amazon",
        "apache-airflow-providers-google",
        "airflow-provider-resumable",
    ]
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return f"Python {platform.python_version()}; " + ", ".join(found)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--disruptions", type=int, default=16, help="seeded disruptions per operator (default 16)"
    )
    parser.add_argument("--seed", type=int, default=None, help="replay a schedule")
    parser.add_argument("--run-seconds", type=float, default=15.0, help="how long disrupted jobs run")
    parser.add_argument(
        "--grace-seconds",
        type=float,
        default=5.0,
        help="after a SIGTERM, SIGKILL what is left of the task this much later (an eviction's grace)",
    )
    parser.add_argument(
        "--baseline-seconds",
        type=float,
        default=60.0,
        help="how long the undisturbed job of each operator runs",
    )
    parser.add_argument("--poll-seconds", type=int, default=2, help="poll interval of both operators")
    parser.add_argument("--streams", default="", help="comma-separated pairs to run (default: all)")
    parser.add_argument("--no-drain", action="store_true", help="skip the mass drain")
    parser.add_argument(
        "--report-only", action="store_true", help=f"regenerate the page and chart from {RESULTS.name}"
    )
    args = parser.parse_args(argv)

    from bench.report import render_chart, render_markdown

    if not args.report_only:
        from bench.run import Bench

        seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
        bench = Bench(
            seed=seed,
            disruptions=args.disruptions,
            run_seconds=args.run_seconds,
            baseline_run_seconds=args.baseline_seconds,
            poll_seconds=args.poll_seconds,
            grace_seconds=args.grace_seconds,
            streams=[s for s in args.streams.split(",") if s],
            drain=not args.no_drain,
        )
        try:
            result = bench.run()
        except KeyboardInterrupt:
            print("bench interrupted; every process it started was stopped", file=sys.stderr)
            return 130
        body = result.to_json()
        body["environment"] = {"machine": _machine(), "versions": _versions()}
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(body, indent=1) + "\n")
        print(f"results: {RESULTS}")
    body = json.loads(RESULTS.read_text())
    render_chart(body, CHART)
    PAGE.write_text(render_markdown(body, f"_static/{CHART.name}"))
    # make bench-drain's section (a run of its own) survives the page being rewritten.
    from bench.celery_drain import keep_section

    keep_section(PAGE)
    print(f"page: {PAGE}\nchart: {CHART}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
