"""Nested access lists, flattened: Identity Center groups cannot nest, so each list becomes
one group holding every user it reaches through nested lists.

``flatten`` walks the nesting graph once, depth first and without recursion (deep chains do
not hit Python's recursion limit), memoising each list's users so that a list nested in many
places is computed once. Nesting is a DAG of at most ``max_depth`` levels: a cycle raises
``CycleError``, a longer chain ``DepthError``. A member list that does not exist contributes
nobody (reference checks report it; at run time the safe reading is "no access").
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from models.domain import AccessListResource, MemberKind
from models.errors import CycleError, DepthError

MAX_DEPTH = 10


@dataclass(frozen=True)
class NestingGraph:
    """Each list's direct users and directly nested lists (memberships live at one time)."""

    users: Mapping[str, frozenset[str]]
    children: Mapping[str, tuple[str, ...]]


def nesting_graph(lists: Mapping[str, AccessListResource], *,
                  at: datetime | None) -> NestingGraph:
    """The membership graph at ``at``; ``at=None`` keeps every membership (structural checks)."""
    users: dict[str, frozenset[str]] = {}
    children: dict[str, tuple[str, ...]] = {}
    for name, access_list in lists.items():
        direct: list[str] = []
        nested: list[str] = []
        for member in access_list.spec.members:
            # ListMember.active_at, inlined: this loop runs once per membership
            if at is not None and member.expires is not None and at >= member.expires:
                continue
            (nested if member.kind is MemberKind.ACCESS_LIST else direct).append(member.name)
        users[name] = frozenset(direct)
        children[name] = tuple(nested)
    return NestingGraph(users=users, children=children)


def flatten(lists: Mapping[str, AccessListResource], *, at: datetime,
            max_depth: int = MAX_DEPTH) -> dict[str, frozenset[str]]:
    """Every list -> all users it reaches at ``at`` (expired memberships ignored)."""
    return flatten_graph(nesting_graph(lists, at=at), max_depth=max_depth)


def flatten_graph(graph: NestingGraph, *, max_depth: int = MAX_DEPTH) -> dict[str, frozenset[str]]:
    """Flatten a nesting graph; raises ``CycleError`` / ``DepthError``."""
    walk = _Walk(graph, max_depth)
    for root in graph.children:
        if root not in walk.members:
            walk.visit(root)
    return walk.members


def check_nesting(lists: Mapping[str, AccessListResource], *, max_depth: int = MAX_DEPTH) -> None:
    """Raise ``CycleError`` / ``DepthError`` if any nesting, expired or not, is invalid."""
    flatten_graph(nesting_graph(lists, at=None), max_depth=max_depth)


class _Walk:
    """One iterative depth-first walk; ``members`` and ``depth`` are the memo."""

    def __init__(self, graph: NestingGraph, max_depth: int) -> None:
        self.graph, self.max_depth = graph, max_depth
        self.members: dict[str, frozenset[str]] = {}
        self.depth: dict[str, int] = {}
        self.deepest_child: dict[str, str] = {}

    def visit(self, root: str) -> None:
        path: list[str] = [root]
        on_path: dict[str, int] = {root: 0}  # list -> its position on the current path
        pending = [iter(self.graph.children.get(root, ()))]
        while pending:
            child = next(pending[-1], None)
            if child is None:
                pending.pop()
                finished = path.pop()
                del on_path[finished]
                self._finish(finished)
            elif child in on_path:
                raise CycleError(path[on_path[child]:] + [child])
            elif child not in self.members and child in self.graph.children:
                on_path[child] = len(path)
                path.append(child)
                pending.append(iter(self.graph.children.get(child, ())))

    def _finish(self, name: str) -> None:
        kids = [k for k in self.graph.children.get(name, ()) if k in self.members]
        depth = 1 + max((self.depth[k] for k in kids), default=0)
        if kids:
            self.deepest_child[name] = max(kids, key=self.depth.__getitem__)
        if depth > self.max_depth:
            raise DepthError(self._chain(name), self.max_depth)
        self.depth[name] = depth
        self.members[name] = _union(self.graph.users.get(name, frozenset()),
                                    [self.members[k] for k in kids])

    def _chain(self, name: str) -> list[str]:
        chain = [name]
        while chain[-1] in self.deepest_child:
            chain.append(self.deepest_child[chain[-1]])
        return chain


def _union(direct: frozenset[str], nested: list[frozenset[str]]) -> frozenset[str]:
    # Reuse a child's set when it adds nothing new: chains of wrapper lists then share memory.
    if not nested:
        return direct
    if not direct and len(nested) == 1:
        return nested[0]
    return direct.union(*nested)


def lists_of_user(lists: Mapping[str, AccessListResource], *, user: str,
                  at: datetime) -> frozenset[str]:
    """Every list ``user`` belongs to at ``at``, directly or through nested lists."""
    return lists_containing(((name, member.name, member.kind, member.expires)
                             for name, access_list in lists.items()
                             for member in access_list.spec.members), user=user, at=at)


MembershipRow = tuple[str, str, MemberKind, datetime | None]  # list, member, kind, expires


def lists_containing(memberships: Iterable[MembershipRow], *, user: str,
                     at: datetime) -> frozenset[str]:
    """``lists_of_user`` from bare membership rows (a per-user read need not build every
    list); a membership counts until (not at) its expiry, as ``ListMember.active_at``."""
    parents: dict[str, list[str]] = defaultdict(list)
    reached: set[str] = set()
    for list_name, member, kind, expires in memberships:
        if expires is not None and at >= expires:
            continue
        if MemberKind(kind) is MemberKind.ACCESS_LIST:
            parents[member].append(list_name)
        elif member == user:
            reached.add(list_name)
    queue = deque(reached)
    while queue:  # upward breadth-first; ``reached`` doubles as the visited set (cycle-safe)
        for parent in parents.get(queue.popleft(), ()):
            if parent not in reached:
                reached.add(parent)
                queue.append(parent)
    return frozenset(reached)
