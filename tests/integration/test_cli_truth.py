"""The CLI tells the truth (issue 21): exit codes of work with errors, a plan listing every
kind of change, and a status that reads what the sync and workers record."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from tasks.worker_state import record_beat_schedule, record_job_run, record_worker_settings
from tests.integration.sync_support import World
from workers.celery.app import beat_schedule, celery_app
from workers.cli.main import app, register_commands
from workers.cli.output import PARTIAL_EXIT
from workers.runtime import Runtime, set_runtime

pytest_plugins = ["tests.integration.sync_fixtures"]
register_commands()


def invoke(*args: str, code: int = 0):
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, (result.output, result.exception)
    return result


def run(*args: str, code: int = 0) -> str:
    return invoke(*args, code=code).output


@pytest.fixture
def refused_world(cli_world: World) -> Iterator[World]:
    """Alice leaves a synced access list; the removal meets a token the directory refuses."""
    cli_world.add_list("developers", roles=["prod-read"], users=["alice"])
    run("sync")
    cli_world.remove_member("developers", "alice")
    with cli_world.reconfigured(scim_token=SecretStr("revoked-token")) as broken:
        previous = set_runtime(broken.runtime)
        yield broken
        set_runtime(previous)


def test_sync_with_scim_refused_exits_partly_applied_and_says_why_on_stderr(
        refused_world: World):
    result = invoke("sync", "-o", "json", "--timeout", "30", code=PARTIAL_EXIT)
    summary = json.loads(result.stdout)
    assert summary["counts"]["scim_stopped"] == 1 and summary["errors"]
    assert "401" in result.stderr and "partly applied" in result.stderr


def test_sync_without_errors_exits_0(cli_world: World):
    assert invoke("sync", "-o", "json").stderr == ""


def test_help_documents_the_exit_codes():
    for command in ("sync", "import", "revoke", "uninstall", "apply"):
        assert f"{PARTIAL_EXIT}" in run(command, "--help"), command


def test_plan_lists_membership_user_and_group_changes(cli_world: World):
    run("sync")
    cli_world.add_list("developers", roles=["prod-read"])
    cli_world.add_user("erin")
    shown = json.loads(run("plan", "-o", "json"))
    changes = {(c["change"], c["principal"]) for c in shown["changes"]}
    assert ("scim_create_user", "USER:erin") in changes
    assert ("scim_create_group", "GROUP:developers") in changes
    run("sync")
    cli_world.add_member("developers", "erin")
    shown = json.loads(run("plan", "-o", "json"))
    assert shown["counts"] == {"members_added": 1}
    assert [(c["change"], c["principal"], c["group"]) for c in shown["changes"]] == [
        ("member_add", "USER:erin", "developers")]
    table = run("plan")
    assert "member_add" in table and "erin" in table and "developers" in table
    run("sync")
    cli_world.remove_member("developers", "erin")
    shown = json.loads(run("plan", "-o", "json"))
    assert [(c["change"], c["principal"], c["group"]) for c in shown["changes"]] == [
        ("member_remove", "USER:erin", "developers")]


def test_status_shows_when_the_last_full_sync_finished(cli_world: World):
    assert "never" in _row(run("status"), "last full sync")
    run("sync")
    row = _row(run("status"), "last full sync")
    assert "never" not in row and "20" in row  # a date


def _row(table: str, label: str) -> str:
    return next(line for line in table.splitlines() if label in line)


def test_plan_uses_the_drift_mode_the_workers_recorded_and_status_shows_foreign(
        cli_world: World):
    run("sync")
    stranger = ("USER", cli_world.sandbox.world.add_user(
        user_name="mallory", given_name="M", family_name="X", email="m@example.com",
        display_name="M X"), "222222222222", cli_world.arn("AdministratorAccess"))
    cli_world.sandbox.center.seed_assignment(stranger)
    shown = json.loads(run("plan", "-o", "json"))  # the embedded worker's mode: report
    assert [c["change"] for c in shown["changes"]] == ["foreign_report"]
    assert shown["drift_mode"] == {"mode": "report", "from": "the workers"}
    with cli_world.reconfigured(drift_mode="quarantine") as workers:
        record_worker_settings(sessions=workers.runtime.sessions, settings=workers.runtime.settings)
        workers.sync()
    shown = json.loads(run("plan", "-o", "json"))  # the CLI's own setting says "report"
    assert [c["change"] for c in shown["changes"]] == ["foreign_quarantine"]
    assert shown["drift_mode"] == {"mode": "quarantine", "from": "the workers"}
    assert "drift mode quarantine (from the workers)" in run("sync", "--dry-run")
    table = run("status")
    assert "1 (1 quarantined); workers' drift mode quarantine" in _row(
        table, "│ foreign assignments")
    assert stranger[1] in table and "222222222222" in table


def test_status_shows_each_scheduled_job_last_and_next_run(cli_world: World):
    jobs = {j["job"]: j for j in json.loads(run("status", "-o", "json"))["scheduled_jobs"]}
    assert jobs["import-refresh"]["last_run"] is None and jobs["import-refresh"]["every"] == "15m"
    record_beat_schedule(sessions=cli_world.runtime.sessions,
                         schedule=beat_schedule(cli_world.runtime.settings.model_copy(
                             update={"import_interval": 1800})))
    record_job_run(sessions=cli_world.runtime.sessions, job="import-refresh", state="SUCCESS")
    jobs = {j["job"]: j for j in json.loads(run("status", "-o", "json"))["scheduled_jobs"]}
    last, following = (datetime.fromisoformat(jobs["import-refresh"][k])
                       for k in ("last_run", "next_run"))
    assert following - last == timedelta(minutes=30) and jobs["import-refresh"]["every"] == "30m"
    assert jobs["full-sync"]["last_run"] is None
    row = _row(run("status"), "import-refresh")
    assert "30m" in row and "SUCCESS" in row and f"{last:%Y-%m-%d %H:%M:%S}" in row


def test_a_beat_job_run_by_a_worker_is_recorded(cli_world: World):
    from workers.celery.app import note_scheduled_run

    note_scheduled_run(task=celery_app.tasks["grantledger.expiry.sweep"], state="SUCCESS")
    jobs = {j["job"]: j for j in json.loads(run("status", "-o", "json"))["scheduled_jobs"]}
    assert jobs["expiry-sweep"]["last_state"] == "SUCCESS"


def test_status_rows_for_people(cli_world: World):
    created = (datetime.now(UTC) - timedelta(days=10.84)).date().isoformat()
    with cli_world.reconfigured(scim_token_created_at=created) as world:
        previous = set_runtime(world.runtime)
        try:
            table = run("status")
        finally:
            set_runtime(previous)
    assert _row(table, "SCIM token age").split("│")[2].strip() in ("10 days", "11 days")
    assert "none" in _row(table, "overdue access reviews")
    assert "NO: nothing enrolled yet" in _row(table, "enrolled")


def test_status_with_nothing_set_up_says_what_to_run_and_creates_nothing(
        cli_world: World, tmp_path):
    absent = tmp_path / "nowhere" / "grantledger.db"
    runtime = Runtime(cli_world.runtime.settings.model_copy(
        update={"database_url": f"sqlite:///{absent}"}))
    previous = set_runtime(runtime)
    try:
        result = invoke("status", code=1)
    finally:
        set_runtime(previous)
    message = result.exception.render()  # what `grantledger` prints on stderr
    assert "nothing is set up here" in message and "grantledger demo" in message
    assert "grantledger import --preview" in message
    assert not absent.exists() and not absent.parent.exists()


def test_restore_table_says_what_happened_in_words(cli_world: World):
    run("sync")
    run("revoke", "--user", "alice", "--reason", "incident")
    table = run("restore", "--user", "alice", "--reason", "cleared")
    assert "lifted" in _row(table, "suspension")
    assert "left as it was" in _row(table, "sign-in") and "False" not in table
    assert "none" in _row(table, "problems")


def test_validate_errors_do_not_claim_nothing_was_applied():
    result = invoke("validate", "--offline", "-f", "ops/examples/broken/unknown-field.yaml",
                    code=1)  # the runner sees the error `grantledger` turns into exit 2
    message = result.exception.render()
    assert "not valid" in message and "nothing applied" not in message
    assert "unknown-field.yaml" in message


def test_help_keeps_bracketed_text():
    shown = " ".join(run("aws-config", "--help").split())
    assert "[profile <account-name>-<permission-set-name>]" in shown
    assert "[sso-session grantledger]" in shown


def test_piped_tables_print_whole_values():
    from workers.cli.output import emit

    name = "ListAccountAssignmentCreationStatus-" + "x" * 90
    result = CliRunner().invoke(typer_app_emitting(lambda: emit(
        [{"name": name, "at": "2026-12-04T21:00:00+00:00"}], fmt="table")), [])
    assert name in result.output and "2026-12-04T21:00:00+00:00" in result.output


def typer_app_emitting(body):
    import typer

    one = typer.Typer()
    one.command()(body)
    return one


def test_sync_whose_aws_operation_failed_exits_partly_applied(cli_world: World):
    cli_world.add_user("bob", roles=["prod-read"])
    cli_world.sandbox.faults.fail_next(1, reason="simulated AWS failure")
    result = invoke("sync", "-o", "json", "--timeout", "30", code=PARTIAL_EXIT)
    assert "FAILED: " in result.stderr and "simulated AWS failure" in result.stderr
