"""The sandbox knobs the benchmarks and fault drills rely on: settle jitter (AWS takes
1-5 s, not a constant) and ``answer_delay`` (AWS accepted the work, the answer is late)."""

from __future__ import annotations

from workers.sandbox.identity_center import CREATE, IdentityCenter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Everyone:
    def account_exists(self, account_id: str) -> bool:
        return True

    def principal_exists(self, principal_type: str, principal_id: str) -> bool:
        return True


def center(clock: Clock, *, jitter: float) -> IdentityCenter:
    return IdentityCenter(directory=Everyone(), instance_id="ssoins-1", identity_store_id="d-1",
                          settle_delay=1.0, settle_jitter=jitter, clock=clock,
                          max_outstanding_creates=1000)


def test_settle_times_spread_over_delay_plus_jitter():
    clock = Clock()
    identity_center = center(clock, jitter=4.0)
    arn = identity_center.create_permission_set(name="ReadOnly").arn
    operations = [identity_center.submit(CREATE, ("USER", f"u{i}", "111111111111", arn))
                  for i in range(200)]
    delays = [op.settles_at - op.created_at for op in operations]
    assert all(1.0 <= d <= 5.0 for d in delays)
    assert max(delays) - min(delays) > 2.0  # spread, not a constant
    clock.now += 5.0
    assert len(identity_center.snapshot()) == 200


def test_no_jitter_means_the_exact_delay():
    clock = Clock()
    identity_center = center(clock, jitter=0.0)
    arn = identity_center.create_permission_set(name="ReadOnly").arn
    operation = identity_center.submit(CREATE, ("USER", "u", "111111111111", arn))
    assert operation.settles_at - operation.created_at == 1.0


def test_answer_delay_holds_the_answer_after_the_work_is_accepted():
    import time

    from workers.sandbox import Sandbox

    with Sandbox(settle_delay=0.0) as sandbox:
        seeded = sandbox.seed({"accounts": [{"id": "111111111111", "name": "Prod"}],
                               "permission_sets": [{"name": "ReadOnly"}],
                               "users": [{"user_name": "ann", "given_name": "A",
                                          "family_name": "N", "email": "a@example.com"}]})
        sandbox.faults.update({"answer_delay": 0.5})
        assert sandbox.faults.state()["answer_delay"] == 0.5
        started = time.monotonic()
        sandbox.client("sso-admin").create_account_assignment(
            InstanceArn=sandbox.instance_arn, TargetId="111111111111", TargetType="AWS_ACCOUNT",
            PermissionSetArn=seeded.permission_sets["ReadOnly"], PrincipalType="USER",
            PrincipalId=seeded.users["ann"])
        assert time.monotonic() - started >= 0.5
        assert len(sandbox.assignments()) == 1
        sandbox.faults.update({"slow_answers": ["ListInstances"]})
        started = time.monotonic()
        sandbox.client("sso-admin").list_instances()
        assert time.monotonic() - started >= 0.5
        sandbox.faults.clear()
        assert sandbox.faults.answer_delay == 0.0
