# Licensed under the Apache License, Version 2.0.
"""The drain bench's probes read Airflow's own loop timing, and its two runs keep separate sections."""

from __future__ import annotations

from pathlib import Path

from bench.celery_drain import DEFAULT_OUTPUT, output_for
from bench.drain_probes import HealthAnswer, loop_durations, loops_between, summarise_health
from bench.page_section import place_section

# Lines as Airflow 3.3.2's scheduler writes them with the job runner's logger at DEBUG.
SCHEDULER_LOG = """\
2026-11-30T02:31:47.139160Z [info     ] Starting the scheduler         [airflow.jobs.scheduler_job_runner.SchedulerJobRunner] loc=scheduler_job_runner.py:1647
2026-11-30T02:31:48.000000Z [debug    ] Next timed event is in 0.500000 [airflow.jobs.scheduler_job_runner.SchedulerJobRunner] loc=scheduler_job_runner.py:1886
2026-11-30T02:31:48.000100Z [debug    ] Ran scheduling loop in 12.50 ms [airflow.jobs.scheduler_job_runner.SchedulerJobRunner] loc=scheduler_job_runner.py:1888
2026-11-30T02:31:49.000100Z [debug    ] Ran scheduling loop in 40.00 ms [airflow.jobs.scheduler_job_runner.SchedulerJobRunner] loc=scheduler_job_runner.py:1888
2026-11-30T02:31:50.000100Z [debug    ] Ran scheduling loop in 900.25 ms [airflow.jobs.scheduler_job_runner.SchedulerJobRunner] loc=scheduler_job_runner.py:1888
"""


def test_loop_durations_are_read_with_their_time_and_summarised_per_window(tmp_path: Path) -> None:
    log = tmp_path / "scheduler.log"
    log.write_text(SCHEDULER_LOG)
    loops = loop_durations(log)
    assert [ms for _, ms in loops] == [12.5, 40.0, 900.25]
    first = loops[0][0]
    assert loops_between(loops, first, first + 1.5) == {
        "loops": 2,
        "p50_ms": 26.2,
        "p95_ms": 40.0,
        "max_ms": 40.0,
    }
    assert loops_between(loops, first + 1.5, first + 10)["max_ms"] == 900.2
    assert loops_between(loops, first + 10, first + 20) == {"loops": 0}


def test_a_health_poll_fails_on_no_answer_a_bad_status_or_an_unhealthy_scheduler() -> None:
    ok = HealthAnswer(10.0, 0.05, 200, "healthy", "healthy", None, 1.0)
    answers = [
        ok,
        HealthAnswer(11.0, 10.0, None, None, None, None, None),
        HealthAnswer(12.0, 0.2, 503, None, None, None, None),
        HealthAnswer(13.0, 0.1, 200, "healthy", "unhealthy", None, 31.0),
        HealthAnswer(20.0, 0.1, 200, "healthy", "healthy", None, 1.0),
    ]
    summary = summarise_health(answers, 10.0, 14.0)
    assert (summary["polls"], summary["failed"]) == (4, 3)
    assert summary["latency_max_s"] == 10.0
    assert summary["scheduler_heartbeat_age_max_s"] == 31.0
    assert summarise_health(answers, 15.0, 16.0) == {"polls": 0}


def test_the_16_and_64_task_drains_keep_separate_sections_of_the_page() -> None:
    scale = output_for("64")
    page = "# Benchmarks\n"
    page = place_section(page, f"{DEFAULT_OUTPUT.start}\nsixteen\n{DEFAULT_OUTPUT.end}\n", DEFAULT_OUTPUT)
    page = place_section(page, f"{scale.start}\nsixty-four\n{scale.end}\n", scale)
    page = place_section(
        page, f"{DEFAULT_OUTPUT.start}\nsixteen again\n{DEFAULT_OUTPUT.end}\n", DEFAULT_OUTPUT
    )
    assert "sixty-four" in page
    assert "sixteen again" in page
    assert "sixteen\n" not in page
    assert scale.results.name == "celery_drain-64.json"
    assert DEFAULT_OUTPUT.results.name == "celery_drain.json"


def test_the_drained_workers_last_task_end_and_the_startup_reschedules_are_read_from_the_logs(
    tmp_path: Path,
) -> None:
    from datetime import datetime, timezone

    from bench.celery_drain import STARTUP_RESCHEDULE, last_workload_finished, rescheduled_at_startup

    worker_log = tmp_path / "worker-a.log"
    worker_log.write_text(
        "2026-11-30T02:52:30.000000Z [info     ] Workload finished              [supervisor] final_state=success\n"
        "2026-11-30T02:52:48.315624Z [info     ] Workload finished              [supervisor] final_state=checkpointed\n"
        "2026-11-30T02:52:55.180468Z [info     ] Workload finished              [supervisor] final_state=checkpointed\n"
        "2026-11-30T02:52:55.193145Z [info     ] Task execute_workload[a9a6] succeeded in 192.3s: None\n"
    )
    sigterm = datetime(2026, 11, 30, 2, 52, 40, tzinfo=timezone.utc).timestamp()
    assert last_workload_finished(worker_log, sigterm) == 15.18
    assert last_workload_finished(worker_log, sigterm + 60) is None

    run = tmp_path / "logs" / "dag_id=d" / "run_id=r"
    for task, text in (("a", STARTUP_RESCHEDULE), ("b", "Decision reconnect"), ("c", STARTUP_RESCHEDULE)):
        (run / f"task_id={task}").mkdir(parents=True)
        (run / f"task_id={task}" / "attempt=1.log").write_text(f'{{"event": "{text}"}}\n')
    assert rescheduled_at_startup(tmp_path / "logs", "d", "r") == 2
