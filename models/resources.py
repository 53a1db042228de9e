"""Reading resource YAML (users, roles, access lists) with every mistake located.

Every error reads ``file:line field.path: message``, e.g.
``roles.yaml:14 spec.allow.account_assignments[1].account: Field required``. All errors of
all files are collected and raised together as one ``ResourceErrors``: a set of files is
accepted whole or not at all.

The YAML is composed into nodes first (they carry line marks), then constructed; the
pydantic error ``loc`` of a field is looked up in a map from field path to line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from models.domain import (
    RESOURCE_KINDS,
    AccessListResource,
    AccessListSpec,
    MemberKind,
    RoleResource,
    UserResource,
)
from models.errors import (
    CycleError,
    DepthError,
    ResourceError,
    ResourceErrors,
    UnknownReference,
)
from models.flatten import MAX_DEPTH, check_nesting

AnyResource = UserResource | RoleResource | AccessListResource
FieldPath = tuple[str | int, ...]


@dataclass(frozen=True)
class LoadedResource:
    """A validated resource and where it was written (``line`` = its first line)."""

    resource: AnyResource
    file: str = "<input>"
    line: int | None = None
    lines: Mapping[FieldPath, int] = field(default_factory=dict, repr=False, compare=False)

    @property
    def kind(self) -> str:
        return self.resource.kind

    @property
    def name(self) -> str:
        return self.resource.metadata.name

    def line_of(self, path: FieldPath) -> int | None:
        """The line of a field, or of its nearest written ancestor."""
        return _line_of(self.lines, path, default=self.line)

    def error(self, path: FieldPath, message: str, *, hint: str | None = None) -> ResourceError:
        """A ``ResourceError`` located at ``path`` inside this resource."""
        return ResourceError(message, file=self.file, line=self.line_of(path),
                             path=format_path(path), hint=hint)


def _line_of(lines: Mapping[FieldPath, int], path: FieldPath, *,
             default: int | None) -> int | None:
    for end in range(len(path), 0, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return default


@dataclass(frozen=True)
class ValidationSummary:
    resources: list[LoadedResource]
    counts: dict[str, int]
    names: list[str]  # "kind/name", in file order

    def as_dict(self) -> dict[str, Any]:
        """What ``validate`` prints: counts by kind and the names, not the resources."""
        return {"counts": dict(self.counts), "names": list(self.names)}


def format_path(path: Iterable[str | int]) -> str:
    """``("spec", "members", 1, "name")`` -> ``spec.members[1].name``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


# --- YAML with line marks ------------------------------------------------------------------


@dataclass
class _Document:
    data: Any
    file: str
    line: int
    lines: dict[FieldPath, int]

    def error(self, path: FieldPath, message: str) -> ResourceError:
        return ResourceError(message, file=self.file, path=format_path(path),
                             line=_line_of(self.lines, path, default=self.line))


MAX_YAML_DEPTH = 64  # resources nest about 6 levels; the composer recurses per level
MAX_ALIASED_NODES = 10_000  # nodes brought in through aliases, per file (alias bombs)


class _BoundedLoader(yaml.SafeLoader):
    """The pure-Python SafeLoader, refusing deep nesting and alias fan-out as it composes.

    Both are refused before anything is expanded or constructed (a 582-byte alias bomb
    expands to hundreds of millions of nodes), with the line where the limit was passed.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.depth = 0
        self.aliased = 0
        self.weights: dict[int, int] = {}  # id(node) -> its node count, aliases expanded

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            self._count_alias(self.peek_event())
        if self.depth >= MAX_YAML_DEPTH:
            raise yaml.composer.ComposerError(
                None, None, f"nested deeper than {MAX_YAML_DEPTH} levels",
                self.peek_event().start_mark)
        self.depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self.depth -= 1
        self.weights[id(node)] = 1 + sum(self.weights.get(id(child), 1)
                                         for child in _children(node))
        return node

    def _count_alias(self, event: yaml.AliasEvent) -> None:
        target = self.anchors.get(event.anchor)
        if target is None:
            return  # the composer names the unknown anchor itself
        if id(target) not in self.weights:  # still being composed: the alias is inside it
            raise yaml.composer.ComposerError(
                None, None, f"alias *{event.anchor} refers to a node that contains it",
                event.start_mark)
        self.aliased += self.weights[id(target)]
        if self.aliased > MAX_ALIASED_NODES:
            raise yaml.composer.ComposerError(
                None, None, f"aliases expand to more than {MAX_ALIASED_NODES} nodes "
                            f"(*{event.anchor} and the aliases before it)", event.start_mark)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _parse(text: str, *, file: str) -> tuple[list[_Document], list[ResourceError]]:
    documents: list[_Document] = []
    errors: list[ResourceError] = []
    try:
        loader = _BoundedLoader(text)  # pure-Python loader: the same error marks everywhere
    except yaml.reader.ReaderError as err:  # a control character anywhere in the text
        line = text.count("\n", 0, err.position) + 1
        return [], [ResourceError(f"invalid YAML: {err.reason} (character #x{err.character:04x})",
                                  file=file, line=line)]
    try:
        while loader.check_node():
            node = loader.get_node()
            lines: dict[FieldPath, int] = {}
            errors += _map_lines(node, (), lines, file=file)
            try:
                data = loader.construct_document(node)
            except ValueError:  # a scalar that resolves but does not construct: 2027-02-30
                errors.append(_bad_scalar(loader, node, (), file=file))
                continue
            documents.append(_Document(data, file, node.start_mark.line + 1, lines))
    except yaml.MarkedYAMLError as err:
        errors.append(_syntax_error(err, file=file))
    finally:
        loader.dispose()
    return [d for d in documents if d.data is not None], errors


def _bad_scalar(loader: _BoundedLoader, node: yaml.Node, path: FieldPath, *,
                file: str) -> ResourceError:
    """Find the scalar that failed to construct, depth first, and locate it."""
    loader.constructed_objects, loader.recursive_objects = {}, {}  # left over by the failure
    children: list[tuple[FieldPath, yaml.Node]] = []
    if isinstance(node, yaml.SequenceNode):
        children = [(path + (i,), item) for i, item in enumerate(node.value)]
    elif isinstance(node, yaml.MappingNode):
        children = [(path + (str(k.value),), v) for k, v in node.value]
    for child_path, child in children:
        try:
            loader.construct_object(child, deep=True)
        except ValueError:
            return _bad_scalar(loader, child, child_path, file=file)
    try:
        loader.construct_object(node, deep=True)
    except ValueError as err:
        message = f"invalid value {node.value!r}: {err}"
    else:
        message = "a value cannot be read"
    return ResourceError(message, file=file, line=node.start_mark.line + 1,
                         path=format_path(path))


def _syntax_error(err: yaml.MarkedYAMLError, *, file: str) -> ResourceError:
    # The problem mark is where the parser gave up; the context mark (an unclosed bracket,
    # say) is often the real mistake, so name both.
    mark = err.problem_mark or err.context_mark
    message = f"invalid YAML: {err.problem or err.context}"
    if err.context and err.context_mark and err.context_mark is not mark:
        message += f" ({err.context} that starts at line {err.context_mark.line + 1})"
    return ResourceError(message, file=file, line=mark.line + 1 if mark else None)


def _map_lines(node: yaml.Node, path: FieldPath, lines: dict[FieldPath, int], *,
               file: str) -> list[ResourceError]:
    """Record the line of every field under ``node``; report duplicate keys."""
    errors: list[ResourceError] = []
    if isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[path + (index,)] = item.start_mark.line + 1
            errors += _map_lines(item, path + (index,), lines, file=file)
    elif isinstance(node, yaml.MappingNode):
        seen: set[FieldPath] = set()
        for key_node, value_node in node.value:
            key_path = path + (str(key_node.value),)
            line = key_node.start_mark.line + 1
            if key_path in seen:  # PyYAML would silently keep the last one
                errors.append(ResourceError(
                    f"duplicate key (first written at line {lines[key_path]})",
                    file=file, line=line, path=format_path(key_path)))
            seen.add(key_path)
            lines[key_path] = line
            errors += _map_lines(value_node, key_path, lines, file=file)
    return errors


# --- validation ------------------------------------------------------------------------------


def _validate(document: _Document) -> LoadedResource | list[ResourceError]:
    if not isinstance(document.data, dict):
        return [document.error((), "a resource is a mapping with kind, metadata and spec")]
    kind = document.data.get("kind")
    if kind is None:
        return [document.error(("kind",), "Field required")]
    model = RESOURCE_KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        return [document.error(("kind",), f"unknown kind {kind!r}; expected one of: "
                               + ", ".join(sorted(RESOURCE_KINDS)))]
    try:
        resource = model.model_validate(document.data)
    except ValidationError as err:
        return [_pydantic_error(document, model, e) for e in err.errors()]
    return LoadedResource(resource, document.file, document.line, document.lines)


def _pydantic_error(document: _Document, model: type[BaseModel], error: Any) -> ResourceError:
    path = _data_path(document.data, error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        expected = _expected_fields(model, path[:-1])
        message = "unknown field" + (f"; expected one of: {', '.join(expected)}"
                                     if expected else "")
    return document.error(path, message)


def _data_path(data: Any, loc: Sequence[str | int]) -> FieldPath:
    # pydantic appends union-member names (e.g. "function-after[...]") to a loc; keep only
    # the parts that name written data, plus the final missing key of a "Field required".
    path: list[str | int] = []
    for part in loc:
        if isinstance(data, dict) and isinstance(part, str):
            path.append(part)
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int):
            path.append(part)
            data = data[part] if part < len(data) else None
        else:
            break
    return tuple(path)


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _inner(annotation: Any) -> Any:
    # Annotated[X, ...] / X | None / list[X] -> X, until a model or a plain type remains.
    while not _is_model(annotation) and (args := [
            a for a in get_args(annotation) if a is not type(None)]):
        annotation = args[0]
    return annotation


def _expected_fields(model: type[BaseModel], parent: FieldPath) -> list[str]:
    """The field names the model accepts at ``parent`` (for "unknown field" messages)."""
    current: Any = model
    for part in parent:
        if isinstance(part, int):
            continue  # _inner already stepped from list[X] to X
        if not _is_model(current) or part not in current.model_fields:
            return []
        current = _inner(current.model_fields[part].annotation)
    return sorted(current.model_fields) if _is_model(current) else []


def _duplicates(loaded: list[LoadedResource]) -> list[ResourceError]:
    first: dict[tuple[str, str], LoadedResource] = {}
    errors = []
    for resource in loaded:
        key = (resource.kind, resource.name)
        if key in first:
            where = f"{first[key].file}:{first[key].line_of(('metadata', 'name'))}"
            errors.append(resource.error(("metadata", "name"), f"duplicate {resource.kind} "
                                         f"{resource.name!r}: first defined at {where}"))
        else:
            first[key] = resource
    return errors


def load_sources(sources: Iterable[tuple[str, str]]) -> list[LoadedResource]:
    """Parse and validate ``(file name, YAML text)`` pairs; raise ``ResourceErrors`` if any
    document anywhere is wrong."""
    loaded: list[LoadedResource] = []
    errors: list[ResourceError] = []
    for file, text in sources:
        documents, file_errors = _parse(text, file=file)
        for document in documents:
            result = _validate(document)
            if isinstance(result, LoadedResource):
                loaded.append(result)
            else:
                file_errors += result
        errors += sorted(file_errors, key=lambda e: e.line or 0)
    errors += _duplicates(loaded)
    if errors:
        raise ResourceErrors(errors)
    return loaded


def load_documents(paths: Iterable[str | Path]) -> list[LoadedResource]:
    """Read and validate multi-document YAML files; raise ``ResourceErrors`` listing all."""
    sources: list[tuple[str, str]] = []
    unreadable: list[ResourceError] = []
    for path in paths:
        try:
            sources.append((str(path), Path(path).read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as err:
            reason = getattr(err, "strerror", None) or str(err)
            unreadable.append(ResourceError(f"cannot read the file: {reason}", file=str(path)))
    try:
        loaded = load_sources(sources)
    except ResourceErrors as err:
        raise ResourceErrors(unreadable + err.errors) from None
    if unreadable:
        raise ResourceErrors(unreadable)
    return loaded


# --- references between resources ---------------------------------------------------------


def _located(resources: Iterable[LoadedResource | AnyResource]) -> list[LoadedResource]:
    return [r if isinstance(r, LoadedResource) else LoadedResource(r) for r in resources]


def check_references(
    resources: Iterable[LoadedResource | AnyResource], *,
    known_roles: Iterable[str] = frozenset(), known_users: Iterable[str] = frozenset(),
    known_lists: Iterable[str] = frozenset(), max_depth: int = MAX_DEPTH,
) -> list[ResourceError]:
    """Every name a resource refers to exists (in ``resources`` or the ``known_*`` names),
    and nested access lists form no cycle and no chain longer than ``max_depth``."""
    loaded = _located(resources)
    names = {kind: {r.name for r in loaded if r.kind == kind} for kind in RESOURCE_KINDS}
    roles = names["role"] | set(known_roles)
    users = names["user"] | set(known_users)
    lists = names["access_list"] | set(known_lists)
    errors: list[ResourceError] = []
    for item in loaded:
        if isinstance(item.resource, UserResource):
            errors += _missing(item, ("spec", "roles"), item.resource.spec.roles, roles, "role")
        elif isinstance(item.resource, AccessListResource):
            errors += _list_references(item, item.resource.spec, roles=roles, users=users,
                                       lists=lists)
    access_lists = {item.name: (item, item.resource) for item in loaded
                    if isinstance(item.resource, AccessListResource)}
    return errors + _nesting_errors(access_lists, max_depth=max_depth)


def _missing(item: LoadedResource, path: FieldPath, wanted: Iterable[str], known: set[str],
             kind: str, *, field_name: str | None = None) -> list[ResourceError]:
    errors: list[ResourceError] = []
    for index, name in enumerate(wanted):
        if name not in known:
            at = path + (index, field_name) if field_name else path + (index,)
            errors.append(UnknownReference(
                f"{kind} {name!r} does not exist", kind=kind, name=name, file=item.file,
                line=item.line_of(at), path=format_path(at),
                hint=f"define it, or list what exists: grantledger get "
                     f"{kind.replace('_', '-')}s"))
    return errors


def _list_references(item: LoadedResource, spec: AccessListSpec, *, roles: set[str],
                     users: set[str], lists: set[str]) -> list[ResourceError]:
    errors = _missing(item, ("spec", "owners"), [o.name for o in spec.owners], users, "user",
                      field_name="name")
    errors += _missing(item, ("spec", "grants", "roles"), spec.grants.roles, roles, "role")
    for index, member in enumerate(spec.members):
        is_list = member.kind is MemberKind.ACCESS_LIST
        if member.name not in (lists if is_list else users):
            other = "user" if is_list else "access_list"
            hint = (f"{member.name!r} is a{'' if is_list else 'n'} {other}: set kind: {other}"
                    if member.name in (users if is_list else lists) else None)
            errors.append(item.error(
                ("spec", "members", index, "name"),
                f"{member.kind.value} {member.name!r} does not exist", hint=hint))
    return errors


def _nesting_errors(lists: Mapping[str, tuple[LoadedResource, AccessListResource]], *,
                    max_depth: int) -> list[ResourceError]:
    try:
        check_nesting({name: resource for name, (_, resource) in lists.items()},
                      max_depth=max_depth)
    except (CycleError, DepthError) as err:
        chain = err.cycle if isinstance(err, CycleError) else err.chain
        # Locate the error at the member entry that closes the cycle / exceeds the depth.
        (item, parent), child = lists[chain[-2]], chain[-1]
        index = next(i for i, m in enumerate(parent.spec.members)
                     if m.name == child and m.kind is MemberKind.ACCESS_LIST)
        return [item.error(("spec", "members", index, "name"), err.message, hint=err.hint)]
    return []


def validate_files(paths: Iterable[str | Path], **known: Iterable[str]) -> ValidationSummary:
    """Load, validate and cross-check files; ``known`` = ``known_roles`` / ``known_users`` /
    ``known_lists`` already defined elsewhere. Raises ``ResourceErrors`` on any mistake."""
    loaded = load_documents(paths)
    errors = check_references(loaded, **known)  # type: ignore[arg-type]
    if errors:
        raise ResourceErrors(errors)
    counts: dict[str, int] = {}
    for item in loaded:
        counts[item.kind] = counts.get(item.kind, 0) + 1
    return ValidationSummary(resources=loaded, counts=counts,
                             names=[f"{item.kind}/{item.name}" for item in loaded])


def dump_resource(resource: AnyResource | LoadedResource) -> dict[str, Any]:
    """The resource as a YAML/JSON-ready dict, defaults left out (for ``-o yaml``)."""
    if isinstance(resource, LoadedResource):
        resource = resource.resource
    body = resource.model_dump(mode="json", exclude_defaults=True)
    return {"kind": resource.kind, "version": resource.version, **body}
