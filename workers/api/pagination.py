"""Pagination of list routes: ``?limit=&offset=`` (default 100, at most 1000)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_OFFSET = 10_000_000  # far above any ledger; keeps generated offsets sane

Item = TypeVar("Item")


class PageParams(BaseModel):
    limit: int = DEFAULT_LIMIT
    offset: int = 0


def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page")] = DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="items to skip")] = 0,
) -> PageParams:
    return PageParams(limit=limit, offset=offset)


PageDep = Annotated[PageParams, Depends(page_params)]


class Page(BaseModel, Generic[Item]):
    """One page of a list; ``total`` is how many there are in all (None: not counted)."""

    items: list[Item]
    total: int | None
    limit: int
    offset: int


def page_of(items: Sequence[Any], params: PageParams) -> dict[str, Any]:
    """The page ``params`` asks for, out of the whole list (validated by ``Page[...]``)."""
    chosen = list(items[params.offset:params.offset + params.limit])
    return {"items": chosen, "total": len(items), "limit": params.limit,
            "offset": params.offset}
