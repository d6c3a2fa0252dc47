# Licensed under the Apache License, Version 2.0.
"""``airflow-resumable``: the provider's command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path


def _cmd_version(args: argparse.Namespace) -> int:
    from airflow.providers.resumable import __version__

    print(f"airflow-provider-resumable {__version__}")
    return 0


def _cmd_patch(args: argparse.Namespace) -> int:
    from airflow.providers.resumable.core_patch.commands import run_patch_command

    return run_patch_command(args.action, args.target)


def _cmd_doctor(args: argparse.Namespace) -> int:
    from airflow.providers.resumable.doctor import run_doctor

    return run_doctor(args.target)


def _add_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    handler: Callable[[argparse.Namespace], int],
    *,
    help: str,
    description: str | None = None,
) -> argparse.ArgumentParser:
    """
    The sub-command ``name``, bound to its handler where it is declared (``main`` calls ``func``).

    :param commands: the parser's sub-commands.
    :param name: what the user types.
    :param handler: what carries it out: the parsed arguments in, the exit status out.
    :param help: its line in the list of commands.
    :param description: what its own ``--help`` says first (default: nothing).
    """
    command = commands.add_parser(name, help=help, description=description)
    command.set_defaults(func=handler)
    return command


def _add_target_option(command: argparse.ArgumentParser) -> None:
    """``--target``: which Airflow installation ``patch`` and ``doctor`` work on."""
    command.add_argument(
        "--target",
        type=Path,
        default=None,
        help="directory holding the 'airflow' package (default: where this interpreter imports it from)",
    )


def _add_executor_option(command: argparse.ArgumentParser, *, celery: str) -> None:
    """
    ``--executor``: which Airflow flavour ``demo`` and ``drill`` start (the choices their runners accept).

    :param command: ``demo`` or ``drill``.
    :param celery: what the Celery flavour brings besides Postgres and Redis, and what this command
        does with its workers.
    """
    command.add_argument(
        "--executor",
        choices=("local", "celery"),
        default="local",
        help=f"local: the LocalExecutor on sqlite (default); celery: Postgres, Redis and {celery}",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, one sub-command per job."""
    parser = argparse.ArgumentParser(
        prog="airflow-resumable",
        description="Resumable operators for Apache Airflow: core patch, diagnostics and drills.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_command(commands, "version", _cmd_version, help="print this provider's version")

    patch = _add_command(
        commands,
        "patch",
        _cmd_patch,
        help="the CHECKPOINTED core patch for apache-airflow 3.3.0, 3.3.1 and 3.3.2",
        description="Show, apply or revert the bundled CHECKPOINTED core patch. Apply it on every "
        "Airflow component (scheduler, API server, workers, dag processor, triggerer), then restart them.",
    )
    patch.add_argument(
        "action",
        choices=["status", "apply", "revert"],
        help="status: exit 0 applied, 1 not applied, 2 partially applied; apply/revert: exit 0 when "
        "done or already done; any refusal exits 3 and writes nothing",
    )
    _add_target_option(patch)

    doctor = _add_command(
        commands,
        "doctor",
        _cmd_doctor,
        help="check this Airflow: version, patch, task state store, checkpoint mode",
    )
    _add_target_option(doctor)

    demo = _add_command(
        commands,
        "demo",
        _cmd_demo,
        help="run a real Airflow stack against fake clouds and shut the workers down mid-run",
        description="Starts Airflow (scheduler, API server, dag processor; LocalExecutor, sqlite; "
        "127.0.0.1 only) and one fake cloud per resumable task, triggers example_resumable_demo, "
        "SIGTERMs the task workers while the remote jobs run, and narrates what happens. Exits 0 when "
        "every job was submitted once, never cancelled, and no retry was used.",
    )
    demo.add_argument(
        "--keep-running", action="store_true", help="leave the stack up after the summary until Ctrl-C"
    )
    demo.add_argument(
        "--deferrable",
        action="store_true",
        help="run the tasks deferrable ([operators] default_deferrable) with a triggerer, and restart the "
        "triggerer instead of shutting workers down while the jobs run",
    )
    _add_executor_option(
        demo, celery="two Celery workers (the 'celery' extra), draining the worker that runs the tasks"
    )

    from airflow.providers.resumable.drill.plan import DisruptionKind

    drill = _add_command(
        commands,
        "drill",
        _cmd_drill,
        help="disrupt resumable tasks on a real Airflow stack and check every one for exactly-once",
        description="Starts a private Airflow stack (127.0.0.1 only) and fake clouds, then runs seeded "
        "disruptions (worker SIGTERM at random points, SIGKILL, a frozen worker, throttling, 5xx, lost "
        "responses, a person marking a checkpointed task failed, a clear whose cancel the cloud "
        "refuses) one task at a time per cloud, clouds side by side. With --conn and --job it drills "
        "your own workspace, account or project instead (real jobs, no injected faults). "
        "Exits 1 if any disruption produced a duplicate submission, a cancellation on shutdown, a lost "
        "run, a used retry or an orphaned job; 2 if the drill cannot run as asked (nothing is started "
        "then); 130 if interrupted: on SIGTERM or Ctrl-C it starts no new disruption, lets those in "
        "flight finish (each within its own time limit; a second SIGTERM or Ctrl-C abandons them), "
        "prints the results of those that finished, marks the others 'not run: interrupted' (or "
        "'not finished' when abandoned), and stops everything it started.",
    )
    drill.add_argument(
        "--disruptions",
        type=int,
        default=None,
        help="disruptions per cloud (default 20 on fakes, 3 on your deployment: each starts a real job)",
    )
    drill.add_argument("--seed", type=int, default=None, help="replay a drill: the seed it printed")
    drill.add_argument(
        "--clouds",
        default=None,
        help="comma-separated clouds to drill (default: databricks,emr,dataproc on fakes; the clouds "
        "given --conn on your deployment)",
    )
    drill.add_argument(
        "--conn",
        action="append",
        default=[],
        metavar="CLOUD=CONN_ID",
        help="drill CLOUD on your deployment through this Airflow connection, resolved in this process "
        "(AIRFLOW_CONN_*, secrets backend or metadata DB); repeat per cloud; needs --job",
    )
    drill.add_argument(
        "--job",
        action="append",
        default=[],
        metavar="CLOUD=FILE.json",
        help="what to run on CLOUD for each disruption (see the drill docs for the format); repeat per cloud",
    )
    drill.add_argument(
        "--kinds",
        default=None,
        help="comma-separated disruption kinds (default: all that need no retry): "
        + ", ".join(kind.value for kind in DisruptionKind),
    )
    drill.add_argument("--timeout", type=float, default=1800.0, help="seconds for the whole drill")
    drill.add_argument(
        "--deferrable",
        action="store_true",
        help="drill the tasks with deferrable=True (polling from a triggerer the stack starts), with the "
        "triggerer kinds (triggerer_sigkill, triggerer_sigterm, triggerer_freeze_moves) instead of those "
        "that strike a polling worker",
    )
    _add_executor_option(
        drill,
        celery="Celery workers with the drain-aware configuration line; strikes hit the worker running the "
        "task (warm and cold shutdown, host lost, pod eviction, freeze), which is then started again",
    )
    drill.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="task instances of each cloud in flight at once (default 1); a fault kind still has its "
        "cloud's fake to itself until its task took the fault",
    )
    return parser


def _pairs(values: Sequence[str], option: str) -> dict[str, str]:
    """``["databricks=my_conn", ...]`` -> ``{"databricks": "my_conn"}``; each cloud at most once."""
    pairs: dict[str, str] = {}
    for value in values:
        cloud, sep, target = value.partition("=")
        if not sep or not cloud.strip() or not target.strip():
            raise ValueError(f"{option} takes CLOUD=VALUE, got {value!r}")
        if cloud.strip() in pairs:
            raise ValueError(f"{option} {cloud.strip()}=... is given twice")
        pairs[cloud.strip()] = target.strip()
    return pairs


def _cmd_drill(args: argparse.Namespace) -> int:
    import os
    import random

    # The drill forks Airflow components (and, on Celery, workers it brings back) while the fake
    # Dataproc serves gRPC from this process; gRPC's fork handlers can abort such a child. The
    # children exec at once and need nothing of them. Read when grpc is first imported: set it here.
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

    from airflow.providers.resumable.drill.plan import DisruptionKind
    from airflow.providers.resumable.drill.real_clouds import real_targets
    from airflow.providers.resumable.drill.runner import (
        FAKE_CLOUDS,
        REAL_DISRUPTIONS_PER_CLOUD,
        run_drill,
    )

    try:
        kinds = [DisruptionKind(k.strip()) for k in args.kinds.split(",")] if args.kinds else None
        conns = _pairs(args.conn, "--conn")
        real = real_targets(conns, {cloud: Path(path) for cloud, path in _pairs(args.job, "--job").items()})
        if args.clouds:
            clouds = [c.strip() for c in args.clouds.split(",") if c.strip()]
        else:
            clouds = list(real) if real else list(FAKE_CLOUDS)
        disruptions = (
            args.disruptions if args.disruptions is not None else (REAL_DISRUPTIONS_PER_CLOUD if real else 20)
        )
        seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
        return run_drill(
            disruptions_per_cloud=disruptions,
            clouds=clouds,
            seed=seed,
            kinds=kinds,
            timeout=args.timeout,
            real=real,
            deferrable=args.deferrable,
            executor=args.executor,
            concurrency=args.concurrency,
        )
    except ValueError as err:  # DrillConfigError included: raised before anything is started
        print(f"airflow-resumable drill: {err}", file=sys.stderr)
        return 2


def _cmd_demo(args: argparse.Namespace) -> int:
    from airflow.providers.resumable.demo import run_demo

    try:
        return run_demo(keep_running=args.keep_running, deferrable=args.deferrable, executor=args.executor)
    except ValueError as err:  # raised before anything is started
        print(f"airflow-resumable demo: {err}", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``airflow-resumable`` console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
