"""Write a large, deterministic sandbox fixture (the format of ``sandbox-small.yaml``).

    python ops/examples/generate_sandbox_fixture.py --accounts 200 --permission-sets 20 \\
        --users 10000 --groups 300 -o /tmp/sandbox-large.yaml

The same arguments (and ``--seed``) always give the same file, so benchmarks compare.
"""

from __future__ import annotations

import argparse
import random
from typing import Any

import yaml

STANDARD_SETS = ["AdministratorAccess", "ReadOnlyAccess", "PowerUserAccess", "BillingAccess"]
GIVEN = ["Ada", "Ben", "Chloe", "Dan", "Eva", "Femi", "Gus", "Hana", "Ivan", "Jo", "Kai", "Lea"]
FAMILY = ["Ahmed", "Berg", "Costa", "Dubois", "Eze", "Fujita", "Garcia", "Horvat", "Ivanova",
          "Jensen", "Kowalski", "Larsen"]
TEAMS = ["Payments", "Search", "Identity", "Data", "Mobile", "Web", "Infra", "Security"]


def account_entries(count: int) -> list[dict[str, Any]]:
    # Ids from 200000000000 up: never the sandbox's management account (123456789012).
    return [{"id": f"{200000000000 + i:012d}", "name": f"{TEAMS[i % len(TEAMS)]}-{i:04d}",
             "ou": f"/Workloads/{TEAMS[i % len(TEAMS)]}"} for i in range(count)]


def permission_set_entries(count: int) -> list[dict[str, Any]]:
    names = STANDARD_SETS[:count] + [f"CustomAccess{i:03d}" for i in range(count - 4)]
    return [{"name": name, "description": f"{name} (generated)"} for name in names]


def user_entries(count: int) -> list[dict[str, Any]]:
    entries = []
    for i in range(count):
        user_name = f"user{i:05d}"
        entries.append({"user_name": user_name, "given_name": GIVEN[i % len(GIVEN)],
                        "family_name": FAMILY[(i // len(GIVEN)) % len(FAMILY)],
                        "email": f"{user_name}@example.com"})
    return entries


def group_entries(count: int, users: list[str], rng: random.Random) -> list[dict[str, Any]]:
    """Groups whose members cover every user (each user in one to three groups)."""
    members: list[set[str]] = [set() for _ in range(count)]
    for user in users:
        for index in rng.sample(range(count), k=min(count, rng.randint(1, 3))):
            members[index].add(user)
    return [{"display_name": f"{TEAMS[i % len(TEAMS)]} Team {i:04d}",
             "description": "generated", "members": sorted(members[i])} for i in range(count)]


def assignment_entries(fixture: dict[str, Any], rng: random.Random) -> list[dict[str, Any]]:
    """Each group on one to four (account, permission set) pairs; one user in 100 directly."""
    accounts = [a["id"] for a in fixture["accounts"]]
    sets = [p["name"] for p in fixture["permission_sets"]]
    chosen: set[tuple[str, str, str, str]] = set()
    for group in fixture["groups"]:
        for _ in range(rng.randint(1, 4)):
            chosen.add(("group", group["display_name"], rng.choice(accounts), rng.choice(sets)))
    for user in fixture["users"][::100]:
        chosen.add(("user", user["user_name"], rng.choice(accounts), rng.choice(sets)))
    return [{"account": account, "permission_set": ps, kind: name}
            for kind, name, account, ps in sorted(chosen)]


def build_fixture(*, accounts: int, permission_sets: int, users: int, groups: int,
                  seed: int = 7) -> dict[str, Any]:
    """The whole fixture as a dict; the same arguments always give the same fixture."""
    rng = random.Random(seed)
    fixture: dict[str, Any] = {
        "accounts": account_entries(accounts),
        "permission_sets": permission_set_entries(permission_sets),
        "users": user_entries(users),
    }
    fixture["groups"] = group_entries(groups, [u["user_name"] for u in fixture["users"]], rng)
    fixture["assignments"] = assignment_entries(fixture, rng) if accounts and groups else []
    return fixture


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--permission-sets", type=int, default=20)
    parser.add_argument("--users", type=int, default=10000)
    parser.add_argument("--groups", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("-o", "--output", required=True, help="the YAML file to write")
    args = parser.parse_args(argv)
    fixture = build_fixture(accounts=args.accounts, permission_sets=args.permission_sets,
                            users=args.users, groups=args.groups, seed=args.seed)
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    with open(args.output, "w", encoding="utf-8") as handle:
        yaml.dump(fixture, handle, Dumper=dumper, sort_keys=False, default_flow_style=None,
                  width=100)
    print(f"wrote {args.output}: " + ", ".join(f"{len(v)} {k}" for k, v in fixture.items()))


if __name__ == "__main__":
    main()
