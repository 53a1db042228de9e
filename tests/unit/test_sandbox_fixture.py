"""Fixture checking and the large-fixture generator (pure: no sandbox running)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from models.errors import ResourceErrors
from workers.sandbox.fixture import load_fixture, problems, seed_fixture
from workers.sandbox.identity_center import IdentityCenter
from workers.sandbox.moto_world import MotoWorld, reset_moto

ROOT = Path(__file__).resolve().parents[2]
SMALL = ROOT / "ops/examples/sandbox-small.yaml"


def generator():
    spec = importlib.util.spec_from_file_location(
        "generate_sandbox_fixture", ROOT / "ops/examples/generate_sandbox_fixture.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_the_shipped_small_fixture_is_valid() -> None:
    fixture, source = load_fixture(SMALL)
    assert problems(fixture, source=source) == []
    assert [a["id"] for a in fixture["accounts"]] == ["111111111111", "222222222222",
                                                      "333333333333"]


def test_problems_name_the_field_and_the_mistake() -> None:
    fixture = {
        "accounts": [{"id": "12", "name": "Short"}, {"id": "111111111111", "name": "Short"}],
        "permission_sets": [{"name": "ReadOnlyAccess"}],
        "users": [{"user_name": "alice", "given_name": "A", "family_name": "B"}],
        "groups": [{"display_name": "Admins", "members": ["zed"]}],
        "assignments": [{"account": "Nowhere", "permission_set": "ReadOnlyAccess",
                         "group": "Admins", "user": "alice"}],
    }
    found = {error.path: error.detail for error in problems(fixture, source="f.yaml")}
    assert found == {"users[0].email": "is required"}
    fixture["users"][0]["email"] = "a@example.com"
    found = {error.path: error.detail for error in problems(fixture, source="f.yaml")}
    assert found == {
        "accounts[0].id": "must be 12 digits (quote it in YAML)",
        "accounts[1].name": "duplicate 'Short'",
        "groups[0].members": "unknown user 'zed'",
        "assignments[0].account": "unknown account 'Nowhere'",
        "assignments[0]": "needs exactly one of user or group",
    }


def test_a_bad_fixture_seeds_nothing() -> None:
    reset_moto()
    world = MotoWorld(region="us-east-1", identity_store_id="d-0000000000")
    world.create_organization()
    center = IdentityCenter(directory=world, instance_id="ssoins-0000000000000000",
                            identity_store_id="d-0000000000")
    fixture = yaml.safe_load(SMALL.read_text())
    fixture["assignments"].append({"account": "Production", "permission_set": "Nope",
                                   "user": "alice"})
    with pytest.raises(ResourceErrors) as raised:
        seed_fixture(fixture, world=world, center=center)
    assert "assignments[8].permission_set" in str(raised.value)
    assert center.permission_set_arns() == [] and not world.account_exists("111111111111")


def test_generator_is_deterministic_and_valid() -> None:
    build = generator().build_fixture
    first = build(accounts=30, permission_sets=6, users=500, groups=12, seed=3)
    assert first == build(accounts=30, permission_sets=6, users=500, groups=12, seed=3)
    assert first != build(accounts=30, permission_sets=6, users=500, groups=12, seed=4)
    assert problems(first) == []
    assert len(first["accounts"]) == 30 and len(first["users"]) == 500
    members = {m for group in first["groups"] for m in group["members"]}
    assert members == {u["user_name"] for u in first["users"]}


def test_generator_writes_the_file(tmp_path, capsys) -> None:
    output = tmp_path / "big.yaml"
    generator().main(["--accounts", "5", "--permission-sets", "4", "--users", "50",
                      "--groups", "3", "-o", str(output)])
    assert capsys.readouterr().out.startswith(f"wrote {output}: 5 accounts")
    fixture, _ = load_fixture(output)
    assert problems(fixture) == [] and len(fixture["users"]) == 50
