"""docker-compose.yml stays a stack that can start: the services it needs, health checks,
start conditions, and commands that exist (every `grantledger ...` one is run with --help).

tests/e2e/test_stack.py runs the same commands as processes; this file checks the rest.
"""

from __future__ import annotations

import click
import pytest
import typer.main
from typer.testing import CliRunner

from tests.stack_support import (
    REPO,
    MissingVariable,
    cli_path,
    interpolate,
    load_compose,
    options_of,
    service_command,
    service_environment,
    start_order,
    with_address,
)

SERVICES = {"postgres", "redis", "migrate", "worker", "beat", "api", "flower", "sandbox"}
OURS = SERVICES - {"postgres", "redis"}
HEALTHY = {"postgres", "redis", "sandbox", "worker", "api", "flower"}  # long-running, probed
CONDITIONS = {"service_healthy", "service_started", "service_completed_successfully"}
SECRETS = {"GRANTLEDGER_API_TOKEN": "t" * 40, "FLOWER_BASIC_AUTH": "admin:secret"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_compose()


@pytest.fixture(scope="module")
def cli() -> typer.Typer:
    from workers.cli.app import app
    from workers.cli.main import register_commands

    register_commands()
    return app


def commands(compose: dict) -> dict[str, list[str]]:
    return {name: service_command(compose, name, SECRETS)
            for name, service in compose["services"].items() if "command" in service
            and name in OURS}


def test_the_stack_has_every_service_and_one_image_for_ours(compose) -> None:
    services = compose["services"]
    assert set(services) == SERVICES
    assert {services[name]["image"] for name in OURS} == {"grantledger:latest"}
    assert all(services[name]["build"]["dockerfile"] == "ops/Dockerfile" for name in OURS)
    assert services["migrate"]["restart"] == "no"  # a one-shot step, never restarted


def test_long_running_services_have_health_checks(compose) -> None:
    for name in HEALTHY:
        check = compose["services"][name].get("healthcheck")
        assert check and check["test"][0] == "CMD" and check.get("retries"), name


def test_start_conditions_wait_for_health_and_for_the_migration(compose) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dependency, rule in (service.get("depends_on") or {}).items():
            assert rule["condition"] in CONDITIONS, (name, dependency)
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], (name, dependency)
            if rule["condition"] == "service_completed_successfully":
                assert services[dependency].get("restart") == "no", (name, dependency)
    for name in ("worker", "beat", "api"):
        needs = services[name]["depends_on"]
        assert needs["migrate"]["condition"] == "service_completed_successfully"
        assert needs["redis"]["condition"] == "service_healthy"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    order = start_order(compose)
    assert order.index("migrate") < min(order.index(n) for n in ("worker", "beat", "api"))


def test_every_grantledger_command_exists_with_the_options_it_passes(compose, cli) -> None:
    ours = {name: c for name, c in commands(compose).items() if c[0] == "grantledger"}
    assert set(ours) == {"sandbox", "migrate", "worker", "beat", "api"}
    group = typer.main.get_command(cli)
    context = click.Context(group)
    for name, command in ours.items():
        path = cli_path(command)
        help_run = CliRunner().invoke(cli, [*path, "--help"])
        assert help_run.exit_code == 0, (name, help_run.output)
        leaf = group
        for word in path:
            leaf = leaf.get_command(context, word)
        known = {opt for param in leaf.params for opt in param.opts}
        assert set(options_of(command)) <= known, (name, set(options_of(command)) - known)


def test_celery_commands_name_our_app_and_flowers_real_options(compose) -> None:
    from flower.options import options as flower_options

    flower = commands(compose)["flower"]
    assert flower[:4] == ["celery", "-A", "workers.celery.app", "flower"]
    assert "--conf=workers/flowerconfig.py" in flower
    assert (REPO / "workers" / "flowerconfig.py").is_file()
    for option in options_of(flower):
        assert option.removeprefix("--") in flower_options, option
    ping = compose["services"]["worker"]["healthcheck"]["test"][1:]
    assert ping[:3] == ["celery", "-A", "workers.celery.app"] and "ping" in ping


def test_secrets_have_no_usable_default(compose) -> None:
    with pytest.raises(MissingVariable, match="GRANTLEDGER_API_TOKEN"):
        interpolate(compose["services"]["api"]["environment"]["GRANTLEDGER_API_TOKEN"], {})
    with pytest.raises(MissingVariable, match="FLOWER_BASIC_AUTH"):
        service_environment(compose, "flower", {"GRANTLEDGER_API_TOKEN": "t" * 40})


def test_flowers_password_is_in_its_environment_not_on_its_command_line(compose) -> None:
    """A command line is readable by every user of the host (ps, /proc/PID/cmdline)."""
    command = " ".join(compose["services"]["flower"]["command"])
    assert "basic_auth" not in command and "FLOWER_BASIC_AUTH" not in command
    assert service_environment(compose, "flower", SECRETS)["FLOWER_BASIC_AUTH"] == \
        "admin:secret"


def test_interpolation_follows_compose() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET}-${UNSET}-$${SET}", env) == "x--${SET}"
    assert interpolate("${EMPTY:-d} ${EMPTY-d} ${UNSET-d} ${SET:-d}", env) == "d  d x"
    with pytest.raises(MissingVariable, match="EMPTY: needed"):
        interpolate("${EMPTY:?needed}", env)
    assert interpolate("${EMPTY?needed}", env) == ""


def test_addresses_are_rewritten_in_both_spellings() -> None:
    command = ["x", "--host", "0.0.0.0", "--port", "5000", "--port=5555", "--hostile"]
    assert with_address(command, host="127.0.0.1", port=9) == \
        ["x", "--host", "127.0.0.1", "--port", "9", "--port=9", "--hostile"]
    assert with_address(command) == command
