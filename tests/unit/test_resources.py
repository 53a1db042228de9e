"""Loading resource YAML: every error located as file:line field.path, all errors at once."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from models.domain import AccessListResource, RoleResource
from models.errors import ResourceError, ResourceErrors
from models.flatten import flatten
from models.policy import allowed_assignments, effective_roles, system_role
from models.resources import (
    check_references,
    dump_resource,
    format_path,
    load_documents,
    load_sources,
    validate_files,
)
from tests.unit.test_domain_builders import EXAMPLES, access_list, sandbox_catalog

SYSTEM_ROLE_NAMES = {a.system_role_name for a in sandbox_catalog()}


def errors_of(*sources: tuple[str, str]) -> list[ResourceError]:
    with pytest.raises(ResourceErrors) as caught:
        load_sources(sources)
    return caught.value.errors


def where(error: ResourceError) -> str:
    return f"{error.file}:{error.line} {error.path}"


ROLE = """\
kind: role
version: v7
metadata:
  name: readers
spec:
  allow:
    account_assignments:
      - account: Staging
        permission_set: ReadOnlyAccess
      - permission_set: ReadOnlyAccess
    request:
      max_duration: 8 hours
"""


def test_a_valid_document_keeps_its_file_and_line() -> None:
    [loaded] = load_sources([("roles.yaml", "# header\n\n" + ROLE.replace(
        "      - permission_set: ReadOnlyAccess\n", "").replace("8 hours", "8h"))])
    assert (loaded.kind, loaded.name, loaded.file, loaded.line) == ("role", "readers",
                                                                    "roles.yaml", 3)
    assert loaded.line_of(("spec", "allow", "request", "max_duration")) == 13


def test_every_error_of_a_document_is_located_by_line_and_field_path() -> None:
    errors = errors_of(("roles.yaml", ROLE))
    assert [where(e) for e in errors] == [
        "roles.yaml:10 spec.allow.account_assignments[1].account",
        "roles.yaml:12 spec.allow.request.max_duration",
    ]
    assert str(errors[0]) == "roles.yaml:10 spec.allow.account_assignments[1].account: " \
                             "Field required"
    assert "invalid duration '8 hours'" in errors[1].detail


def test_errors_of_all_files_and_documents_are_collected() -> None:
    user = "kind: user\nmetadata: {name: a}\nspec: {email: nope, given_name: A, family_name: B}\n"
    errors = errors_of(("roles.yaml", ROLE), ("users.yaml", "---\n" + user + "---\n" + user))
    assert [where(e) for e in errors] == [
        "roles.yaml:10 spec.allow.account_assignments[1].account",
        "roles.yaml:12 spec.allow.request.max_duration",
        "users.yaml:4 spec.email",
        "users.yaml:8 spec.email",
    ]


def test_unknown_fields_name_what_is_expected() -> None:
    [error] = errors_of(("u.yaml", "kind: user\nmetadata: {name: a, labls: {}}\n"
                                   "spec: {email: a@b.c, given_name: A, family_name: B}\n"))
    assert where(error) == "u.yaml:2 metadata.labls"
    assert error.detail == "unknown field; expected one of: description, labels, name"


def test_errors_inside_lists_of_lists_and_dicts_get_indexed_paths() -> None:
    text = ("kind: access_list\nmetadata: {name: l}\nspec:\n  title: L\n  members:\n"
            "    - {name: a}\n    - {name: b, kind: group}\n    - {name: c, expires: soon}\n")
    errors = errors_of(("l.yaml", text))
    assert [where(e) for e in errors] == ["l.yaml:7 spec.members[1].kind",
                                          "l.yaml:8 spec.members[2].expires"]
    assert "'user' or 'access_list'" in errors[0].detail


@pytest.mark.parametrize(("text", "location", "fragment"), [
    ("metadata: {name: a}\n", "f.yaml:1 kind", "Field required"),
    ("kind: group\nmetadata: {name: a}\n", "f.yaml:1 kind", "unknown kind 'group'"),
    ("- just\n- a list\n", "f.yaml:1 ", "a resource is a mapping"),
    ("kind: role\nmetadata: {name: a}\nmetadata: {name: b}\n", "f.yaml:3 metadata",
     "duplicate key (first written at line 2)"),
])
def test_document_level_mistakes(text: str, location: str, fragment: str) -> None:
    [error] = errors_of(("f.yaml", text))
    assert where(error) == location and fragment in error.detail


def test_a_syntax_error_points_at_its_line_and_earlier_documents_still_count() -> None:
    text = "kind: role\nmetadata: {name: a, x: 1}\n---\nkind: role\nmetadata: [a\n"
    errors = errors_of(("f.yaml", text))
    assert [where(e) for e in errors] == ["f.yaml:2 metadata.x", "f.yaml:6 "]
    assert errors[1].detail.startswith("invalid YAML")


def test_values_yaml_resolves_but_cannot_build_are_located() -> None:
    text = ("kind: access_list\nmetadata: {name: l}\nspec:\n  title: T\n  members:\n"
            "    - {name: a}\n    - {name: b, expires: 2027-02-30}\n")
    [error] = errors_of(("l.yaml", text))
    assert where(error) == "l.yaml:7 spec.members[1].expires"
    assert error.detail == "invalid value '2027-02-30': day is out of range for month"


def test_a_control_character_is_located_by_line() -> None:
    [error] = errors_of(("u.yaml", "kind: user\n\nmetadata: {name: \x07}\n"))
    assert (error.line, error.path) == (3, "")
    assert "special characters are not allowed" in error.detail


def test_empty_documents_and_comments_are_skipped() -> None:
    assert load_sources([("f.yaml", "# nothing here\n---\n---\n")]) == []


def test_a_duplicate_name_across_files_points_at_the_second_and_names_the_first() -> None:
    doc = "kind: role\nmetadata:\n  name: dup\n"
    [error] = errors_of(("a.yaml", doc), ("b.yaml", "# other\n" + doc))
    assert where(error) == "b.yaml:4 metadata.name"
    assert error.detail == "duplicate role 'dup': first defined at a.yaml:3"
    # the same name in another kind is fine
    assert len(load_sources([("a.yaml", doc), ("b.yaml", doc.replace("role", "access_list")
                              + "spec: {title: T}\n")])) == 2


def test_unreadable_files_are_errors_too(tmp_path: Path) -> None:
    good = tmp_path / "roles.yaml"
    good.write_text(ROLE)
    with pytest.raises(ResourceErrors) as caught:
        load_documents([tmp_path / "missing.yaml", good])
    assert caught.value.errors[0].file.endswith("missing.yaml")
    assert "cannot read the file" in caught.value.errors[0].detail
    assert len(caught.value.errors) == 3


def test_format_path() -> None:
    assert format_path(("spec", "members", 1, "name")) == "spec.members[1].name"
    assert format_path(()) == ""


# --- references ------------------------------------------------------------------------------

REFERENCES = """\
kind: user
metadata: {name: alice}
spec:
  email: alice@example.com
  given_name: Alice
  family_name: Archer
  roles: [dev, ghost]
---
kind: access_list
metadata: {name: team}
spec:
  title: Team
  owners: [{name: alice}, {name: nobody}]
  members:
    - {name: alice}
    - {name: team-b}
    - {name: other-team, kind: access_list}
  grants: {roles: [dev, phantom]}
---
kind: access_list
metadata: {name: team-b}
spec: {title: B}
"""


def test_every_broken_reference_is_located() -> None:
    loaded = load_sources([("refs.yaml", REFERENCES)])
    errors = check_references(loaded, known_roles={"dev"})
    assert [(where(e), e.detail) for e in errors] == [
        ("refs.yaml:7 spec.roles[1]", "role 'ghost' does not exist"),
        ("refs.yaml:13 spec.owners[1].name", "user 'nobody' does not exist"),
        ("refs.yaml:18 spec.grants.roles[1]", "role 'phantom' does not exist"),
        ("refs.yaml:16 spec.members[1].name", "user 'team-b' does not exist"),
        ("refs.yaml:17 spec.members[2].name", "access_list 'other-team' does not exist"),
    ]
    assert errors[3].hint == "'team-b' is an access_list: set kind: access_list"


def test_known_names_from_elsewhere_satisfy_references() -> None:
    loaded = load_sources([("refs.yaml", REFERENCES)])
    errors = check_references(loaded, known_roles={"dev", "ghost", "phantom"},
                              known_users={"nobody", "team-b"}, known_lists={"other-team"})
    assert errors == []


def test_plain_resources_are_checked_without_locations() -> None:
    errors = check_references([access_list("a", lists=["b"]), access_list("b", lists=["a"])],
                              known_users={"owner"})
    assert [str(e) for e in errors] == [
        "<input> spec.members[0].name: access lists form a cycle: a -> b -> a"]


# --- example files ---------------------------------------------------------------------------


def test_the_example_resources_are_valid_and_mean_what_they_say() -> None:
    summary = validate_files(sorted((EXAMPLES / "resources").glob("*.yaml")),
                             known_roles=SYSTEM_ROLE_NAMES)
    assert summary.counts == {"access_list": 5, "role": 4, "user": 6}
    assert "access_list/platform-admins" in summary.names
    assert summary.as_dict()["counts"] == summary.counts
    resources = [item.resource for item in summary.resources]
    lists = {r.name: r for r in resources if isinstance(r, AccessListResource)}
    at = datetime(2026, 6, 1, tzinfo=UTC)
    assert flatten(lists, at=at)["engineering"] == {"alice", "bob", "dave", "erin"}
    roles = {r.name: r for r in resources if isinstance(r, RoleResource)}
    roles |= {a.system_role_name: system_role(a) for a in sandbox_catalog()}
    held = effective_roles(user="dave", user_roles=["developer"], lists=lists, at=at)
    assert {"oncall-breakglass", "AdministratorAccess-on-Production-111111111111"} <= held
    access = allowed_assignments(roles=[roles[n] for n in held], catalog=sandbox_catalog())
    assert "111111111111/AdministratorAccess" in access
    assert "333333333333/BillingAccess" not in access  # the developer role's deny wins


EXPECT = re.compile(r"# expect: (?P<file>[^:]+):(?P<line>\d+) ?(?P<path>\S*): (?P<fragment>.+)")


@pytest.mark.parametrize("path", sorted((EXAMPLES / "broken").glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_each_broken_example_fails_exactly_where_its_comment_says(path: Path) -> None:
    expect = EXPECT.search(path.read_text())
    assert expect, f"{path.name} has no '# expect:' comment"
    with pytest.raises(ResourceErrors) as caught:
        validate_files([path])
    [error] = caught.value.errors
    assert (Path(error.file).name, error.line, error.path) == (
        expect["file"], int(expect["line"]), expect["path"])
    assert expect["fragment"] in error.detail


def test_there_is_a_broken_example_for_each_kind_of_mistake() -> None:
    names = {p.stem for p in (EXAMPLES / "broken").glob("*.yaml")}
    assert names >= {"syntax-error", "unknown-field", "missing-field", "wrong-version",
                     "bad-duration", "duplicate-name", "unknown-role", "cycle", "too-deep",
                     "bad-regex"}


# --- dumping ---------------------------------------------------------------------------------


def test_dump_leaves_defaults_out_and_round_trips() -> None:
    loaded = load_sources([("lists.yaml", (EXAMPLES / "resources" / "access-lists.yaml")
                            .read_text())])
    for item in loaded:
        dumped = dump_resource(item)
        assert list(dumped)[:2] == ["kind", "version"]
        text = yaml.safe_dump(dumped, sort_keys=False)
        [again] = load_sources([("again.yaml", text)])
        assert again.resource == item.resource
    sre = dump_resource(loaded[0])
    assert sre["spec"]["recurrence"] == "90d"
    assert sre["spec"]["members"][0] == {"name": "dave"}
    assert sre["spec"]["members"][1]["expires"] == "2027-06-30T00:00:00Z"


def alias_bomb(levels: int = 9) -> str:
    """The "billion laughs": each level repeats the one before nine times (9**9 scalars)."""
    rows = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level, name in enumerate("bcdefghijklm"[:levels - 1]):
        previous = "abcdefghijklm"[level]
        rows.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    return ("kind: user\nversion: v1\nmetadata: {name: bomb}\nspec:\n  labels:\n"
            + "".join(f"    {row}\n" for row in rows))


def test_an_alias_bomb_is_refused_at_its_line_in_milliseconds() -> None:
    started = time.perf_counter()
    [error] = errors_of(("bomb.yaml", alias_bomb()))
    assert time.perf_counter() - started < 0.5
    assert error.file == "bomb.yaml" and error.line == 10  # the level that passed the cap
    assert "aliases expand to more than" in error.detail


def test_aliases_that_stay_small_are_read() -> None:
    text = ("kind: user\nmetadata: {name: alice}\nspec:\n  email: a@example.com\n"
            "  given_name: &name Alice\n  family_name: *name\n"
            "  traits: {teams: &teams [sre, dba], oncall: *teams}\n")
    [alice] = load_sources([("u.yaml", text)])
    assert alice.resource.spec.family_name == "Alice"
    assert alice.resource.spec.traits == {"teams": ["sre", "dba"], "oncall": ["sre", "dba"]}


def test_an_alias_inside_the_node_it_names_is_refused() -> None:
    [error] = errors_of(("r.yaml", "kind: user\nmetadata: {name: r}\nspec: &s\n  x: *s\n"))
    assert error.line == 4 and "refers to a node that contains it" in error.detail


def test_deep_nesting_is_a_located_error_not_a_recursion_error() -> None:
    [error] = errors_of(("deep.yaml", "kind: user\nspec:\n  " + "{a: " * 5000 + "1"
                         + "}" * 5000 + "\n"))
    assert error.line == 3 and "nested deeper than" in error.detail
