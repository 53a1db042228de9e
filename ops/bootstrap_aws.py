"""Create (or bring up to date) the IAM role grantledger runs as, with exactly the actions
of `grantledger iam-policy` (``workers.adapters.aws.iam_policy.iam_policy``).

    ops/bootstrap-aws --trust 123456789012 [--trust arn:aws:iam::...:role/ci] \\
        [--trust-service ecs-tasks.amazonaws.com] [--role-name grantledger] [--dry-run]

Idempotent: it reads the role, its trust policy and its inline policy, and changes only what
differs (a second run changes nothing). The permissions are one inline policy on the role:
it belongs to this role alone, and ``PutRolePolicy`` replaces it whole, where a managed
policy would need versions created and the oldest pruned (at most 5 kept). ``--dry-run``
prints the same steps and changes nothing; without credentials or network it still prints
them, planned as for a new role, and names what it could not check. Credentials: the
standard AWS chain (run it from the management account, where Identity Center lives).
Region: --region, GRANTLEDGER_AWS_REGION, AWS_REGION, AWS_DEFAULT_REGION, else us-east-1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workers.adapters.aws.iam_policy import iam_policy  # noqa: E402

POLICY_NAME = "grantledger-integration"
ACCOUNT_ID = re.compile(r"^\d{12}$")
TAGS = [{"Key": "managed-by", "Value": "grantledger-bootstrap"}]


@dataclass(frozen=True)
class Step:
    """One change the role needs: its IAM API, its arguments, and what it is for."""

    api: str
    params: dict[str, Any]
    why: str


def trust_policy(principals: Sequence[str], services: Sequence[str] = ()) -> dict[str, Any]:
    """Who may assume the role: account ids (their root), IAM ARNs as given, AWS services."""
    if not principals and not services:
        raise ValueError("say who runs grantledger: --trust ACCOUNT_ID|ROLE_ARN or "
                         "--trust-service SERVICE")
    aws = sorted({f"arn:aws:iam::{p}:root" if ACCOUNT_ID.match(p) else p for p in principals})
    principal: dict[str, list[str]] = {}
    if aws:
        principal["AWS"] = aws
    if services:
        principal["Service"] = sorted(set(services))
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}]}


def canonical(document: Any) -> Any:
    """A policy document in one comparable form (IAM may return a string, URL-encoded, with
    single values where we sent lists, in another order)."""
    if isinstance(document, str):
        document = json.loads(unquote(document))
    return _normalized(document)


def _normalized(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _normalized(item) for key, item in sorted(value.items())}
    if isinstance(value, list):
        items = sorted((_normalized(item) for item in value),
                       key=lambda i: json.dumps(i, sort_keys=True))
        return items[0] if len(items) == 1 else items
    return value


def plan_steps(current: dict[str, Any] | None, inline: Any, *, role_name: str,
               trust: dict[str, Any], policy: dict[str, Any]) -> list[Step]:
    """Pure: the steps that make the role (``current``: GetRole's Role, None when missing;
    ``inline``: our inline policy's document, None when missing) match what we want."""
    steps = []
    if current is None:
        steps.append(Step("create_role", {
            "RoleName": role_name, "AssumeRolePolicyDocument": json.dumps(trust),
            "Description": "grantledger: Identity Center account assignments", "Tags": TAGS,
        }, f"create role {role_name}"))
    elif canonical(current.get("AssumeRolePolicyDocument")) != canonical(trust):
        steps.append(Step("update_assume_role_policy", {
            "RoleName": role_name, "PolicyDocument": json.dumps(trust)},
            f"update who may assume {role_name}"))
    if inline is None or canonical(inline) != canonical(policy):
        steps.append(Step("put_role_policy", {
            "RoleName": role_name, "PolicyName": POLICY_NAME,
            "PolicyDocument": json.dumps(policy)},
            f"{'set' if inline is None else 'update'} inline policy {POLICY_NAME} "
            f"({sum(len(s['Action']) for s in policy['Statement'])} actions)"))
    return steps


def read_role(iam: Any, role_name: str) -> tuple[dict[str, Any] | None, Any]:
    """(the role, our inline policy document), None for what does not exist."""
    try:
        role = iam.get_role(RoleName=role_name)["Role"]
    except iam.exceptions.NoSuchEntityException:
        return None, None
    try:
        inline = iam.get_role_policy(RoleName=role_name, PolicyName=POLICY_NAME)
    except iam.exceptions.NoSuchEntityException:
        return role, None
    return role, inline["PolicyDocument"]


def apply_steps(iam: Any, steps: Sequence[Step], *, role_name: str) -> None:
    """Run the steps in order; after a create, wait until IAM serves the role (IAM is
    eventually consistent: a policy put on a role created a moment ago can be refused)."""
    for step in steps:
        getattr(iam, step.api)(**step.params)
        if step.api == "create_role":
            iam.get_waiter("role_exists").wait(RoleName=role_name,
                                               WaiterConfig={"Delay": 1, "MaxAttempts": 30})


def bootstrap(iam: Any, *, role_name: str, trust: dict[str, Any], dry_run: bool
              ) -> dict[str, Any]:
    """Bring the role up to date (or, dry, say how); what was (or would be) done."""
    current, inline, unchecked = read_role_for(iam, role_name, dry_run=dry_run)
    steps = plan_steps(current, inline, role_name=role_name, trust=trust, policy=iam_policy())
    if not dry_run:
        apply_steps(iam, steps, role_name=role_name)
    arn = (current or {}).get("Arn") or (None if dry_run else
                                         iam.get_role(RoleName=role_name)["Role"]["Arn"])
    return {"role": role_name, "arn": arn, "dry_run": dry_run, "changed": bool(steps),
            "steps": [step.why for step in steps], "unchecked": unchecked}


def read_role_for(iam: Any, role_name: str, *, dry_run: bool
                  ) -> tuple[dict[str, Any] | None, Any, list[str]]:
    """``read_role``; a dry run that cannot read (no credentials, no network, refused)
    plans as for a new role and says what it could not check."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return (*read_role(iam, role_name), [])
    except (BotoCoreError, ClientError) as err:
        if not dry_run:
            raise
        return None, None, [f"whether role {role_name} and its inline policy {POLICY_NAME} "
                            f"exist (steps assume they do not): {err}"]


def region_of(args: argparse.Namespace) -> str:
    """--region, then GRANTLEDGER_AWS_REGION, AWS_REGION, AWS_DEFAULT_REGION; IAM is global,
    so us-east-1 when none is set."""
    return (args.region or os.environ.get("GRANTLEDGER_AWS_REGION")
            or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
            or "us-east-1")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bootstrap-aws", description=__doc__.split("\n\n")[0])
    parser.add_argument("--role-name", default="grantledger")
    parser.add_argument("--trust", action="append", default=[], metavar="ACCOUNT_ID|ARN",
                        help="an account id or IAM ARN that runs grantledger (repeatable)")
    parser.add_argument("--trust-service", action="append", default=[], metavar="SERVICE",
                        help="an AWS service that runs it, e.g. ecs-tasks.amazonaws.com")
    parser.add_argument("--dry-run", action="store_true", help="print the steps, change nothing")
    parser.add_argument("--endpoint-url", help="another IAM endpoint (tests: the sandbox)")
    parser.add_argument("--region", default=None, help="default: GRANTLEDGER_AWS_REGION, "
                        "AWS_REGION, AWS_DEFAULT_REGION, else us-east-1")
    parser.add_argument("--profile", default=None)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; exit 0 done (or nothing to do), 2 bad arguments, 1 AWS refused."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    args = parse_args(argv)
    try:
        trust = trust_policy(args.trust, args.trust_service)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    # A dry run without network gives up in seconds rather than botocore's minute of retries.
    quick = Config(connect_timeout=5, read_timeout=10, retries={"total_max_attempts": 2})
    try:
        session = boto3.Session(profile_name=args.profile, region_name=region_of(args))
        iam = session.client("iam", endpoint_url=args.endpoint_url,
                             config=quick if args.dry_run else None)
        result = bootstrap(iam, role_name=args.role_name, trust=trust, dry_run=args.dry_run)
    except (BotoCoreError, ClientError) as err:
        print(f"error: {err}\n  hint: run with credentials of the management account that "
              "may create IAM roles (iam:CreateRole, iam:PutRolePolicy, ...)", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        verb = "would" if args.dry_run else "did"
        for why in result["steps"]:
            print(f"{verb}: {why}")
        for what in result["unchecked"]:
            print(f"could not check: {what}")
        print(f"role {args.role_name} ({result['arn'] or 'not created yet'}): "
              f"{'up to date, nothing to do' if not result['changed'] else 'see steps above'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
