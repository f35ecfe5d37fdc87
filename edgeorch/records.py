"""``@frozen``: a frozen dataclass (a record) that costs half as much to define.

``@frozen`` is ``@dataclass(frozen=True)`` (``@frozen(kw_only=True,
repr=False)`` takes those two options too): the same ``__init__``, fields,
frozenness, ``dataclasses.fields``/``replace``/``asdict``, ``__match_args__``,
and the same ``__eq__``, ``__hash__`` and ``__repr__`` results. The difference
is where those three come from. A dataclass writes each as Python source
and compiles it, per class; defining one with five fields costs ~1 ms on a
small VM, and a short command imports about a hundred (an in-process
``edgeorch run`` spent a third of its imports there). A record keeps only
the generated ``__init__`` (and the frozen ``__setattr__``/``__delattr__``)
and shares one implementation of the other three among all records, driven
by per-class tuples of field names computed once.

Contract, as dataclasses define it:

- ``__eq__``: equal when ``other`` is of exactly the same class and the tuples
  of the fields with ``compare=True`` are equal; ``NotImplemented`` otherwise.
  (Tuples, as dataclasses compare on Python 3.11 and 3.12, on every version:
  3.13's dataclasses compare field by field, which differs only for a field
  that holds the very same NaN object in both, equal here.)
- ``__hash__``: the hash of the tuple of the fields whose ``hash`` is True,
  or None and ``compare=True``.
- ``__repr__``: ``QualName(a=..., b=...)`` over the fields with ``repr=True``;
  ``...`` for a record met again while it is being shown (a cycle).
- A method the class body defines itself is kept (``__hash__`` too; a body
  that defines ``__eq__`` and no ``__hash__`` gets the shared hash, as a
  frozen dataclass would).
"""

from __future__ import annotations

import dataclasses
import operator
import reprlib
from typing import Any, Callable, TypeVar, overload

T = TypeVar("T", bound=type)


def _tuple_getter(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """``obj -> (obj.<name>, ...)`` for ``names`` (a tuple for zero or one name too)."""
    if not names:
        return lambda obj: ()
    if len(names) == 1:
        one = operator.attrgetter(names[0])
        return lambda obj: (one(obj),)
    return operator.attrgetter(*names)


def _eq(self: Any, other: Any) -> Any:
    if other.__class__ is not self.__class__:
        return NotImplemented
    key = self.__class__.__record_compared__
    return key(self) == key(other)


def _hash(self: Any) -> int:
    return hash(self.__class__.__record_hashed__(self))


@reprlib.recursive_repr()
def _repr(self: Any) -> str:
    cls = self.__class__
    shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in cls.__record_shown__)
    return f"{cls.__qualname__}({shown})"


def _make_record(cls: T, kw_only: bool, repr: bool) -> T:
    own = cls.__dict__
    own_eq, own_repr, own_hash = "__eq__" in own, "__repr__" in own, own.get("__hash__", dataclasses.MISSING)
    # Python sets __hash__ = None in a body that defines __eq__ alone; that is no hash of the class's own.
    explicit_hash = not (own_hash is dataclasses.MISSING or (own_hash is None and own_eq))
    out = dataclasses.dataclass(cls, frozen=True, eq=False, repr=False, kw_only=kw_only)
    fields = dataclasses.fields(out)
    out.__record_compared__ = _tuple_getter(tuple(f.name for f in fields if f.compare))
    out.__record_hashed__ = _tuple_getter(tuple(
        f.name for f in fields if (f.compare if f.hash is None else f.hash)))
    out.__record_shown__ = tuple(f.name for f in fields if f.repr)
    if not own_eq:
        out.__eq__ = _eq
    if not explicit_hash:
        out.__hash__ = _hash
    if repr and not own_repr:
        out.__repr__ = _repr
    return out


@overload
def frozen(cls: T, /) -> T: ...
@overload
def frozen(*, kw_only: bool = False, repr: bool = True) -> Callable[[T], T]: ...


def frozen(cls: Any = None, /, *, kw_only: bool = False, repr: bool = True) -> Any:
    """``@frozen`` or ``@frozen(kw_only=..., repr=...)``: see the module docstring."""
    if cls is None:
        return lambda c: _make_record(c, kw_only, repr)
    return _make_record(cls, kw_only, repr)
