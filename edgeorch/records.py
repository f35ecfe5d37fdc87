"""``@frozen``: a frozen dataclass (a record) that costs a tenth as much to define.

``@frozen`` is ``@dataclass(frozen=True)`` (``@frozen(kw_only=True,
repr=False)`` takes those two options too): the same ``__init__`` (its
signature, defaults, factories, ``init=False`` fields, keyword-only fields,
``__post_init__``, error messages), fields, frozenness,
``dataclasses.fields``/``replace``/``asdict``, ``__match_args__``, and the
same ``__eq__``, ``__hash__`` and ``__repr__`` results. The difference is
where the methods come from. A dataclass writes each of them as Python source
and compiles it, per class; defining one with five fields costs ~1 ms on a
small VM, and a short command imports about a hundred (an in-process
``edgeorch run`` spent a third of its imports there). A record compiles
nothing when it is defined: ``dataclasses`` only collects its fields;
``__eq__``, ``__hash__`` and ``__repr__`` are shared by all records, driven
by per-class tuples of field names computed once; the frozen
``__setattr__``/``__delattr__`` are closures; and ``__init__`` is compiled
at the class's first instance (most records a process imports are never
made). Defining a five-field record: ~0.1 ms; its first instance pays ~0.15
ms once; later instances are slightly cheaper than a dataclass's.

Type checkers see a record as the frozen dataclass it is (``frozen`` is a
``typing.dataclass_transform``, PEP 681): its ``__init__``, its fields,
``dataclasses.replace``.

Not supported (``TypeError`` at definition): ``InitVar`` fields, and mixing
records and dataclasses in one class hierarchy (dataclasses see a record as
not frozen). Until its first instance, ``inspect.signature`` of a record's
class shows ``(*args, **kwargs)``.

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
from typing import Any, Callable, TypeVar, dataclass_transform, overload

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


class _Factory:
    def __repr__(self) -> str:
        return "<factory>"


_HAS_FACTORY = _Factory()
"""The default of an ``__init__`` parameter whose field has a ``default_factory`` (shown as dataclasses show it)."""


def _frozen_methods(cls: Any, names: frozenset[str]) -> tuple[Callable[..., None], Callable[..., None]]:
    """The ``__setattr__``/``__delattr__`` a frozen dataclass gets, as closures (no source compiled).

    Same rule as dataclasses: on an instance of ``cls`` itself every assignment
    and deletion raises ``FrozenInstanceError``; on an instance of a plain
    subclass, only those of a field.
    """
    def __setattr__(self: Any, name: str, value: Any) -> None:
        if type(self) is cls or name in names:
            raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")
        super(cls, self).__setattr__(name, value)

    def __delattr__(self: Any, name: str) -> None:
        if type(self) is cls or name in names:
            raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")
        super(cls, self).__delattr__(name)

    __setattr__.__qualname__ = f"{cls.__qualname__}.__setattr__"
    __delattr__.__qualname__ = f"{cls.__qualname__}.__delattr__"
    return __setattr__, __delattr__


def _init_source(cls: type, fields: tuple[dataclasses.Field[Any], ...]) -> tuple[str, dict[str, Any]]:
    """The source of ``cls.__init__`` as a frozen dataclass writes it, and the globals it needs.

    Parameters in field order, keyword-only ones after ``*``; a field with
    ``init=False`` is set from its default or factory (or not at all, without
    either); ``__post_init__`` is called last when the class has one.
    """
    env: dict[str, Any] = {"__record_set__": object.__setattr__, "__record_factory__": _HAS_FACTORY}
    params: list[str] = []
    kw_params: list[str] = []
    body: list[str] = []
    for f in fields:
        has_default, has_factory = f.default is not dataclasses.MISSING, f.default_factory is not dataclasses.MISSING
        if has_default:
            env[f"__record_default_{f.name}"] = f.default
        if has_factory:
            env[f"__record_make_{f.name}"] = f.default_factory
        if f.init:
            param = f.name
            if has_factory:
                param += "=__record_factory__"
                value = f"__record_make_{f.name}() if {f.name} is __record_factory__ else {f.name}"
            else:
                param += f"=__record_default_{f.name}" if has_default else ""
                value = f.name
            (kw_params if f.kw_only else params).append(param)
        elif has_factory:
            value = f"__record_make_{f.name}()"
        elif has_default:
            value = f"__record_default_{f.name}"
        else:
            continue
        body.append(f"    __record_set__(__record_self__, {f.name!r}, {value})")
    if hasattr(cls, "__post_init__"):
        body.append("    __record_self__.__post_init__()")
    signature = ", ".join(["__record_self__", *params, *(["*", *kw_params] if kw_params else [])])
    return "def __init__(" + signature + "):\n" + ("\n".join(body) or "    pass") + "\n", env


def _lazy_init(cls: type, fields: tuple[dataclasses.Field[Any], ...]) -> Callable[..., None]:
    """An ``__init__`` that compiles the real one (:func:`_init_source`) at the class's first instance.

    A process imports about a hundred records and makes instances of a few
    dozen: compiling each ``__init__`` when the class is defined was half of
    what defining a record cost.
    """
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        source, env = _init_source(cls, fields)
        exec(source, env)  # noqa: S102 - our own text, from the field names (identifiers) only
        real = env["__init__"]
        real.__qualname__ = f"{cls.__qualname__}.__init__"
        # Errors about its arguments name the class, as a dataclass's do ("Point.__init__() missing ...").
        real.__code__ = real.__code__.replace(co_qualname=real.__qualname__)
        real.__annotations__ = {**{f.name: f.type for f in fields if f.init}, "return": None}
        real.__module__ = cls.__module__
        cls.__init__ = real  # type: ignore[misc]
        real(self, *args, **kwargs)

    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    return __init__


def _check_fields(cls: type, fields: tuple[dataclasses.Field[Any], ...]) -> None:
    """Raise ``TypeError`` where a frozen dataclass would, at definition (the ``__init__`` is built later)."""
    if len(fields) != len(cls.__dataclass_fields__) and any(  # type: ignore[attr-defined]
            isinstance(f.type, dataclasses.InitVar) or "InitVar" in str(f.type)
            for f in cls.__dataclass_fields__.values()):  # type: ignore[attr-defined]
        raise TypeError(f"{cls.__qualname__}: @frozen records take no InitVar")
    seen_default = False
    for f in fields:
        if not f.init or f.kw_only:
            continue
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
            seen_default = True
        elif seen_default:
            raise TypeError(f"non-default argument {f.name!r} follows default argument")
    for name in ("__setattr__", "__delattr__"):
        if name in cls.__dict__:
            raise TypeError(f"Cannot overwrite attribute {name} in class {cls.__name__}")


def _make_record(cls: T, kw_only: bool, repr: bool) -> T:
    own = cls.__dict__
    own_eq, own_repr, own_hash = "__eq__" in own, "__repr__" in own, own.get("__hash__", dataclasses.MISSING)
    own_init = "__init__" in own
    # Python sets __hash__ = None in a body that defines __eq__ alone; that is no hash of the class's own.
    explicit_hash = not (own_hash is dataclasses.MISSING or (own_hash is None and own_eq))
    # dataclasses collect the fields, defaults and __match_args__; every method that it would compile
    # from source is ours instead (init=False, not frozen: nothing is compiled here).
    out: Any = dataclasses.dataclass(cls, init=False, frozen=False, eq=False, repr=False, kw_only=kw_only)
    fields = dataclasses.fields(out)
    _check_fields(out, fields)
    if not own_init:
        out.__init__ = _lazy_init(out, fields)
    out.__setattr__, out.__delattr__ = _frozen_methods(out, frozenset(f.name for f in fields))
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


# Type checkers see a record as the frozen dataclass it is (its __init__, fields, replace) (PEP 681).
@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field, dataclasses.Field))
def frozen(cls: Any = None, /, *, kw_only: bool = False, repr: bool = True) -> Any:
    """``@frozen`` or ``@frozen(kw_only=..., repr=...)``: see the module docstring."""
    if cls is None:
        return lambda c: _make_record(c, kw_only, repr)
    return _make_record(cls, kw_only, repr)
