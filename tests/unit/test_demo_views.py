"""The demo's pure views: AWS activity of a step, the operations log, the closing timeline."""

from __future__ import annotations

from workers.demo.story import StepResult, timeline_rows
from workers.demo.views import (
    Names,
    Transition,
    aws_delta,
    describe_calls,
    describe_counts,
    is_write,
    merged,
    new_transitions,
)

ALICE = ("USER", "u-alice", "111111111111", "arn:ps/admin")
DEVS = ("GROUP", "g-devs", "222222222222", "arn:ps/read")
NAMES = Names(principals={"u-alice": "user:alice", "g-devs": "group:developers"},
              accounts={"111111111111": "Production"}, permission_sets={"arn:ps/admin": "Admin"})


def test_calls_that_change_state_are_told_from_reads() -> None:
    assert is_write("sso-admin:CreateAccountAssignment")
    assert is_write("sso-admin:DeleteAccountAssignment") and is_write("scim:PatchGroup")
    assert is_write("scim:PutUser")
    assert not is_write("sso-admin:ListAccountAssignments")
    assert not is_write("sso-admin:DescribeAccountAssignmentCreationStatus")
    assert not is_write("identitystore:ListGroupMemberships") and not is_write("scim:GetUser")


def test_a_steps_calls_leave_out_the_demos_own_and_count_what_came_and_went() -> None:
    delta = aws_delta(
        calls_before={"sso-admin:CreateAccountAssignment": 2, "identitystore:ListGroups": 1},
        calls_after={"sso-admin:CreateAccountAssignment": 3, "identitystore:ListGroups": 1,
                     "identitystore:ListGroupMemberships": 4},
        outside={"identitystore:ListGroupMemberships": 1},
        assignments_before={DEVS}, assignments_after={ALICE}, assignments_seen={ALICE, DEVS})
    assert dict(delta.calls) == {"sso-admin:CreateAccountAssignment": 1,
                                 "identitystore:ListGroupMemberships": 3}
    assert delta.total == 4 and delta.writes == 1
    assert delta.created == {ALICE} and delta.deleted == {DEVS}

    came_and_went = aws_delta(calls_before={}, calls_after={}, outside={},
                              assignments_before=set(), assignments_after=set(),
                              assignments_seen={ALICE})
    assert came_and_went.created == came_and_went.deleted == {ALICE}


def test_calls_and_counts_read_as_a_sentence() -> None:
    assert describe_calls({}) == "no calls"
    assert describe_calls({"a:List": 1}) == "1 call: a:List 1"
    text = describe_calls({f"s:Op{i}": i for i in range(1, 8)}, limit=2)
    assert text == "28 calls: s:Op7 7, s:Op6 6 (+5 more kinds)"
    assert describe_counts({"foreign": 1, "failed": 0, "foreign_new": 1}) == \
        "foreign 1, foreign_new 1"
    assert describe_counts({"failed": 0}) == "nothing to do"


def test_assignments_are_named_from_the_ledger_and_unknown_ids_stay_visible() -> None:
    assert NAMES.assignment(ALICE) == "user:alice -> Production/Admin"
    assert NAMES.assignment(("USER", "u-x", "999", "arn:y")) == "user:u-x -> 999/arn:y"


def test_only_new_states_make_transitions_and_two_follows_merge_without_repeats() -> None:
    rows = [(1, "create_assignment", ALICE, "SUBMITTED"),
            (2, "delete_assignment", DEVS, "SUCCEEDED")]
    fresh = new_transitions({1: "SUBMITTED"}, rows, at=2.5, names=NAMES)
    assert fresh == [Transition(2.5, 2, "delete", "group:developers -> 222222222222/arn:ps/read",
                                "SUCCEEDED")]
    first = [Transition(1.0, 1, "create", "a", "SUBMITTED")]
    later = [Transition(3.0, 1, "create", "a", "SUBMITTED"),
             Transition(3.0, 1, "create", "a", "SUCCEEDED")]
    assert merged(first, later) == [first[0], later[1]]


def test_the_timeline_has_one_row_per_step_with_its_aws_work() -> None:
    delta = aws_delta(calls_before={}, calls_after={"sso-admin:CreateAccountAssignment": 3},
                      outside={}, assignments_before=set(), assignments_after={ALICE},
                      assignments_seen=set())
    [row] = timeline_rows([StepResult(5, "Requests", 2.94, 1.71, "3 created", delta)])
    assert row == {"step": "5. Requests", "at": "+2.9s", "took": "1.7s", "aws calls": "3",
                   "changes": "3", "assignments": "+1 -0", "outcome": "3 created"}
