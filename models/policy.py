"""Policy decisions, without I/O: what roles allow, what a user may request and review.

Rules: a role's ``allow`` grants what its patterns match; any ``deny`` of any role the user
holds removes it again (deny always wins, across roles). Request and review rules follow the
same shape: ``allow.request`` / ``allow.review_requests`` minus the matching ``deny`` side.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from models.domain import (
    SYSTEM_LABEL,
    AccessListResource,
    AccountAssignment,
    AssignmentRule,
    Metadata,
    RequestRule,
    RoleConditions,
    RoleResource,
    RoleSpec,
    compile_pattern,
    is_exact_pattern,
)
from models.flatten import lists_of_user

Roles = Mapping[str, RoleResource] | Iterable[RoleResource]


def pattern_matches(pattern: str, value: str) -> bool:
    """Exact value, ``*``, glob (``Prod*``) or anchored regex (``^dev-\\d+$``)."""
    if pattern == "*" or pattern == value:
        return True
    return not is_exact_pattern(pattern) and compile_pattern(pattern).fullmatch(value) is not None


def assignment_matches(rule: AssignmentRule, assignment: AccountAssignment) -> bool:
    """The rule names the account by id or name, the permission set by ARN or name."""
    account, permission_set = assignment.account, assignment.permission_set
    return (
        (pattern_matches(rule.account, account.id) or pattern_matches(rule.account, account.name))
        and (pattern_matches(rule.permission_set, permission_set.arn)
             or pattern_matches(rule.permission_set, permission_set.name))
    )


class CatalogIndex:
    """The catalog of assignments, indexed by account id and name so that rules naming one
    account exactly (every system role does) skip the scan of the whole catalog. Build it
    once and pass it as ``catalog=`` when evaluating many users against the same catalog."""

    def __init__(self, catalog: Iterable[AccountAssignment]) -> None:
        self.assignments = list(catalog)
        self.by_account: dict[str, list[AccountAssignment]] = defaultdict(list)
        for assignment in self.assignments:
            self.by_account[assignment.account.id].append(assignment)
            if assignment.account.name != assignment.account.id:
                self.by_account[assignment.account.name].append(assignment)

    def __iter__(self) -> Iterator[AccountAssignment]:
        return iter(self.assignments)

    def matching(self, rule: AssignmentRule) -> list[AccountAssignment]:
        """The assignments one rule covers."""
        exact = is_exact_pattern(rule.account)
        candidates = self.by_account.get(rule.account, ()) if exact else self.assignments
        return [a for a in candidates if assignment_matches(rule, a)]


def _index(catalog: Iterable[AccountAssignment]) -> CatalogIndex:
    return catalog if isinstance(catalog, CatalogIndex) else CatalogIndex(catalog)


def _any_rule_matches(rules: Iterable[AssignmentRule], assignment: AccountAssignment) -> bool:
    return any(assignment_matches(rule, assignment) for rule in rules)


def _matches_any(patterns: Iterable[str], value: str) -> bool:
    return any(pattern_matches(p, value) for p in patterns)


def _role_list(roles: Roles) -> list[RoleResource]:
    return list(roles.values() if isinstance(roles, Mapping) else roles)


def _covered(rules: Iterable[AssignmentRule], index: CatalogIndex) -> dict[str, AccountAssignment]:
    return {a.id: a for rule in rules for a in index.matching(rule)}


def allowed_assignments(*, roles: Iterable[RoleResource],
                        catalog: Iterable[AccountAssignment]) -> set[str]:
    """Ids of the assignments the roles together allow; any role's deny wins over any allow."""
    roles = list(roles)
    allowed = _covered((rule for r in roles for rule in r.spec.allow.account_assignments),
                       _index(catalog))
    deny = [rule for role in roles for rule in role.spec.deny.account_assignments]
    return {key for key, a in allowed.items() if not _any_rule_matches(deny, a)}


def effective_roles(*, user: str, user_roles: Iterable[str],
                    lists: Mapping[str, AccessListResource], at: datetime) -> set[str]:
    """The user's own roles plus those granted by every list they reach at ``at``."""
    roles = set(user_roles)
    for name in lists_of_user(lists, user=user, at=at):
        roles.update(lists[name].spec.grants.roles)
    return roles


@dataclass(frozen=True)
class Requestable:
    """What a user may request. ``role_caps`` / ``assignment_caps`` hold, per item, the
    longest duration any permitting rule allows; ``max_duration`` is the longest of all."""

    roles: set[str]
    assignments: set[str]
    max_duration: timedelta
    approvals: int = 1
    break_glass: bool = False
    break_glass_max_duration: timedelta = timedelta(0)
    role_caps: Mapping[str, timedelta] = field(default_factory=dict)
    assignment_caps: Mapping[str, timedelta] = field(default_factory=dict)

    def cap_for(self, *, roles: Iterable[str] = (), assignments: Iterable[str] = ()) -> timedelta:
        """The longest duration a request for all these items may have (the tightest cap)."""
        caps = [self.role_caps.get(r, timedelta(0)) for r in roles]
        caps += [self.assignment_caps.get(a, timedelta(0)) for a in assignments]
        return min(caps, default=timedelta(0))


def _raise_caps(caps: dict[str, timedelta], keys: Iterable[str], cap: timedelta) -> None:
    for key in keys:
        caps[key] = max(caps.get(key, timedelta(0)), cap)


def requestable(*, roles: Iterable[RoleResource], catalog: Iterable[AccountAssignment],
                all_roles: Roles) -> Requestable:
    """Roles and assignment ids the holder of ``roles`` may request, with duration caps.

    A requestable role also makes the assignments it allows requestable one by one. Deny
    removes: ``deny.request`` of any held role, and ``deny.account_assignments`` of any held
    role (a role may not be used to request what its holder is denied).
    """
    held, index, candidates = list(roles), _index(catalog), _role_list(all_roles)
    denials = [r.spec.deny.request for r in held if r.spec.deny.request]
    deny_roles = [p for rule in denials for p in rule.roles]
    deny_rules = [rule for r in held for rule in r.spec.deny.account_assignments]
    deny_rules += [rule for denial in denials for rule in denial.account_assignments]
    rules = [r.spec.allow.request for r in held if r.spec.allow.request]
    role_caps: dict[str, timedelta] = {}
    assignment_caps: dict[str, timedelta] = {}
    for rule in rules:
        names = [c for c in candidates
                 if _matches_any(rule.roles, c.name) and not _matches_any(deny_roles, c.name)]
        _raise_caps(role_caps, (c.name for c in names), rule.max_duration)
        for candidate in names:
            _raise_caps(assignment_caps, allowed_assignments(roles=[candidate], catalog=index),
                        rule.max_duration)
        _raise_caps(assignment_caps, _covered(rule.account_assignments, index),
                    rule.max_duration)
    denied = _covered(deny_rules, index)
    assignment_caps = {k: v for k, v in assignment_caps.items() if k not in denied}
    return _summarise(rules, role_caps, assignment_caps)


def _summarise(rules: list[RequestRule], role_caps: dict[str, timedelta],
               assignment_caps: dict[str, timedelta]) -> Requestable:
    # Several rules may apply: the strictest approval count and break-glass limit win.
    glass = [rule for rule in rules if rule.break_glass]
    return Requestable(
        roles=set(role_caps), assignments=set(assignment_caps),
        max_duration=max([*role_caps.values(), *assignment_caps.values()], default=timedelta(0)),
        approvals=max((rule.approvals for rule in rules), default=1),
        break_glass=bool(glass),
        break_glass_max_duration=min((r.break_glass_max_duration for r in glass),
                                     default=timedelta(0)),
        role_caps=role_caps, assignment_caps=assignment_caps,
    )


def reviewable_roles(*, reviewer_roles: Iterable[RoleResource], all_roles: Roles) -> set[str]:
    """Names of the roles whose requests the holder of ``reviewer_roles`` may review."""
    held = list(reviewer_roles)
    allow = [p for r in held if r.spec.allow.review_requests
             for p in r.spec.allow.review_requests.roles]
    deny = [p for r in held if r.spec.deny.review_requests
            for p in r.spec.deny.review_requests.roles]
    return {role.name for role in _role_list(all_roles)
            if _matches_any(allow, role.name) and not _matches_any(deny, role.name)}


def may_review(*, reviewer_roles: Iterable[RoleResource], request_roles: Collection[str],
               request_assignments: Collection[str], all_roles: Roles,
               catalog: Iterable[AccountAssignment]) -> bool:
    """Whether the reviewer may review every item of a request (self-review is the caller's
    check: it needs the people, not the roles). An empty request is never reviewable."""
    if not request_roles and not request_assignments:
        return False
    by_name = {role.name: role for role in _role_list(all_roles)}
    reviewable = reviewable_roles(reviewer_roles=reviewer_roles, all_roles=by_name)
    if not set(request_roles) <= reviewable:
        return False
    wanted = set(request_assignments)
    asked = {a.id: a for a in _index(catalog) if a.id in wanted}
    if len(asked) != len(wanted):
        return False  # an id outside the catalog is nobody's to approve
    covered: set[str] = set()
    for name in reviewable:
        covered |= allowed_assignments(roles=[by_name[name]], catalog=asked.values())
    return wanted <= covered


def system_role(assignment: AccountAssignment) -> RoleResource:
    """The read-only role allowing exactly one assignment (account id + permission set ARN)."""
    account, permission_set = assignment.account, assignment.permission_set
    return RoleResource(
        kind="role",
        metadata=Metadata(
            name=assignment.system_role_name,
            labels={SYSTEM_LABEL: "true", "grantledger.io/account-id": account.id,
                    "grantledger.io/permission-set": permission_set.name},
            description=f"{permission_set.name} on {account.name} ({account.id}); "
                        "generated by grantledger, edits are reverted",
        ),
        spec=RoleSpec(allow=RoleConditions(account_assignments=[
            AssignmentRule(account=account.id, permission_set=permission_set.arn)])),
    )
