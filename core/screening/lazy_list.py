"""A list built when first read, its length known before: a screen's candidates and
rejections stay columns until something reads them as objects."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar, overload

T = TypeVar("T")


class LazyList(Sequence[T]):
    """`count` items, made by `build` on first read (then kept)."""

    def __init__(self, count: int, build: Callable[[], list[T]]) -> None:
        self._count = count
        self._build: Callable[[], list[T]] | None = build
        self._items: list[T] | None = None

    @property
    def built(self) -> bool:
        return self._items is not None

    def _all(self) -> list[T]:
        if self._items is None:
            assert self._build is not None
            self._items = self._build()
            self._build = None
            if len(self._items) != self._count:
                raise AssertionError(f"built {len(self._items)} items, promised "
                                     f"{self._count}")
        return self._items

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, i: int) -> T: ...

    @overload
    def __getitem__(self, i: slice) -> list[T]: ...

    def __getitem__(self, i: int | slice) -> T | list[T]:
        return self._all()[i]

    def __iter__(self) -> Iterator[T]:
        return iter(self._all())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return self._all() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(self._all())
