"""``@frozen`` (edgeorch/records.py) is ``@dataclass(frozen=True)``: the same equality, hash, repr and helpers."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pickle
import pkgutil
from dataclasses import dataclass, field

import pytest

import edgeorch
from edgeorch.records import frozen


@frozen
class Pickled:
    """A record at module level (pickle finds classes by name)."""

    a: int
    b: tuple[str, ...] = ()


def _pair(body, **options):
    """The same class body made a record and a frozen dataclass (``body(decorator)`` defines the class)."""
    return body(frozen(**options) if options else frozen), body(dataclass(frozen=True, **options))


def _point(deco):
    @deco
    class Point:
        """A point."""

        x: int
        y: float = 0.0
        label: str = field(default="", compare=False)
        secret: str = field(default="s", repr=False)
        tag: str = field(default="t", hash=False)
        tags: tuple[str, ...] = ()

    return Point


def test_equality_hash_and_repr_are_those_of_a_frozen_dataclass():
    rec, ref = _pair(_point)
    cases = [dict(x=1), dict(x=1, y=2.5, label="a"), dict(x=1, label="b"), dict(x=2, tag="u"),
             dict(x=1, secret="other"), dict(x=1, y=float("inf")), dict(x=1, tags=("a", "b"))]
    for a in cases:
        assert repr(rec(**a)).replace("Point", "P") == repr(ref(**a)).replace("Point", "P")
        assert hash(rec(**a)) == hash(ref(**a))
        for b in cases:
            assert (rec(**a) == rec(**b)) == (ref(**a) == ref(**b)), (a, b)
            assert (rec(**a) != rec(**b)) == (ref(**a) != ref(**b)), (a, b)
    nan = float("nan")
    assert rec(x=1, y=nan) == rec(x=1, y=nan)  # tuples compare the same object as equal (Python 3.11/3.12 alike)
    assert rec(x=1, y=nan) != rec(x=1, y=float("nan"))  # two NaNs never are
    assert rec(x=1) != ref(x=1) and rec(x=1).__eq__(ref(x=1)) is NotImplemented  # another class: never equal


def test_frozen_with_the_dataclass_helpers_and_pickling():
    Point = _point(frozen)
    p = Point(1, 2.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.x = 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        del p.y
    assert dataclasses.is_dataclass(Point) and [f.name for f in dataclasses.fields(Point)][:2] == ["x", "y"]
    assert dataclasses.replace(p, x=5) == Point(5, 2.0)
    assert dataclasses.asdict(p)["y"] == 2.0
    assert Point.__match_args__ == ("x", "y", "label", "secret", "tag", "tags")
    assert pickle.loads(pickle.dumps(Pickled(1, ("a",)))) == Pickled(1, ("a",))
    assert Point.__doc__ == "A point."


def test_keyword_only_and_no_repr_options():
    def body(deco):
        @deco
        class K:
            """K."""

            a: int
            b: int = 0

        return K

    rec, ref = _pair(body, kw_only=True)
    with pytest.raises(TypeError):
        rec(1)
    assert rec(a=1) == rec(a=1, b=0) and repr(rec(a=1)) == repr(ref(a=1)).replace(ref.__qualname__, rec.__qualname__)
    plain = frozen(repr=False)(type("Plain", (), {"__annotations__": {"a": "int"}, "__doc__": "P."}))
    assert repr(plain(1)).startswith("<") and plain(1) == plain(1)  # object's repr, still a record's equality


def test_init_is_that_of_a_frozen_dataclass_defaults_factories_init_false_and_post_init():
    made: list[str] = []

    def body(deco):
        @deco
        class Job:
            """J."""

            name: str
            retries: int = 3
            tags: list[str] = field(default_factory=list)
            seen: int = field(default=7, init=False)
            made_at: list[int] = field(default_factory=lambda: [1], init=False)
            never: int = field(init=False, repr=False, compare=False)
            owner: str = field(default="me", kw_only=True)

            def __post_init__(self):
                made.append(self.name)

        return Job

    rec, ref = _pair(body)
    for args, kwargs in [(("a",), {}), (("a", 5), {}), (("a",), {"tags": ["x"], "owner": "you"}), ((), {"name": "b"})]:
        r, d = rec(*args, **kwargs), ref(*args, **kwargs)
        assert [getattr(r, f) for f in ("name", "retries", "tags", "seen", "made_at", "owner")] == \
            [getattr(d, f) for f in ("name", "retries", "tags", "seen", "made_at", "owner")]
        assert not hasattr(r, "never") and not hasattr(d, "never")
    assert made == ["a", "a"] * 3 + ["b", "b"]  # __post_init__ ran once per instance, in both
    assert rec("a").tags is not rec("a").tags  # a factory is called for each instance
    assert str(inspect.signature(rec)) == str(inspect.signature(ref))
    for bad_args, bad_kwargs in [((), {}), (("a", 1, [], "me"), {}), (("a",), {"seen": 1}), (("a",), {"x": 1})]:
        with pytest.raises(TypeError) as got:
            rec(*bad_args, **bad_kwargs)
        with pytest.raises(TypeError) as want:
            ref(*bad_args, **bad_kwargs)
        assert str(got.value) == str(want.value).replace(ref.__qualname__, rec.__qualname__)


def test_type_checkers_are_told_a_record_is_a_frozen_dataclass():
    # Without it mypy knows no record's __init__ (a thousand errors where there were 130).
    assert hasattr(frozen, "__dataclass_transform__")


def test_init_is_compiled_at_the_first_instance_not_at_definition():
    @frozen
    class Late:
        """L."""

        a: int
        b: int = 2

    lazy = Late.__init__
    assert Late(1) == Late(1, 2) and Late.__init__ is not lazy  # replaced by the compiled one, once
    compiled = Late.__init__
    Late(3)
    assert Late.__init__ is compiled and Late.__init__.__qualname__.endswith("Late.__init__")

    @frozen
    class Own:
        """O."""

        a: int

        def __init__(self, text):
            object.__setattr__(self, "a", int(text))

    assert Own("4").a == 4  # an __init__ of the class's own is kept


def test_definition_errors_are_those_of_a_frozen_dataclass():
    with pytest.raises(TypeError, match="non-default argument 'b' follows default argument"):
        @frozen
        class Order:
            """O."""

            a: int = 0
            b: int

    with pytest.raises(TypeError, match="take no InitVar"):
        @frozen
        class Init:
            """I."""

            a: int
            b: dataclasses.InitVar[int] = 0

    with pytest.raises(TypeError, match="Cannot overwrite attribute __setattr__"):
        @frozen
        class Sets:
            """S."""

            a: int

            def __setattr__(self, name, value):
                pass


def test_a_plain_subclass_may_set_attributes_that_are_not_fields():
    @frozen
    class Base:
        """B."""

        a: int

    class Plain(Base):
        pass

    p = Plain(1)
    p.extra = 2  # as with a frozen dataclass: only the fields are frozen on a plain subclass
    assert p.extra == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.a = 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        Base(1).extra = 2


def test_a_subclass_compares_and_shows_its_own_fields():
    def body(deco):
        @deco
        class Base:
            """B."""

            ts: float

        @deco
        class Child(Base):
            """C."""

            run_id: int
            note: str = "n"

        return Child

    rec, ref = _pair(body)
    assert repr(rec(1.0, 2)) == repr(ref(1.0, 2)).replace(ref.__qualname__, rec.__qualname__)
    assert rec(1.0, 2) != rec(1.0, 3) and hash(rec(1.0, 2)) == hash(ref(1.0, 2))


def test_methods_the_class_defines_itself_are_kept():
    @frozen
    class Own:
        """O."""

        a: int

        def __eq__(self, other):
            return True

        def __repr__(self):
            return "own"

    @frozen
    class OwnHash:
        """H."""

        a: int

        def __hash__(self):
            return 7

    assert Own(1) == Own(2) and repr(Own(1)) == "own"
    assert hash(Own(1)) == hash((1,))  # __eq__ alone: Python's implicit __hash__ = None is replaced, as dataclass does
    assert hash(OwnHash(1)) == 7


def test_a_record_that_holds_itself_is_shown_without_endless_recursion():
    @frozen
    class Box:
        """B."""

        items: list

    b = Box([])
    b.items.append(b)
    assert repr(b) == "test_a_record_that_holds_itself_is_shown_without_endless_recursion.<locals>.Box(items=[...])"


def test_every_record_of_edgeorch_equals_a_copy_of_itself_and_hashes_like_a_frozen_dataclass():
    # The net for the switch from @dataclass(frozen=True): every record class, made with its defaults
    # where it has them all, compares, hashes and shows as the dataclass of the same fields would.
    found = 0
    for info in pkgutil.walk_packages(edgeorch.__path__, "edgeorch."):
        if ".ray." in info.name or info.name.endswith((".__main__", ".ray")):
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an optional extra (Ray) not installed
            continue
        for obj in list(vars(module).values()):
            if not (isinstance(obj, type) and obj.__module__ == module.__name__
                    and "__record_compared__" in obj.__dict__):
                continue
            found += 1
            if any(f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.init
                   for f in dataclasses.fields(obj)):
                continue
            try:
                a, b = obj(), obj()
            except Exception:  # a __post_init__ that checks its values
                continue
            assert a == b and not (a != b), obj
            try:
                assert hash(a) == hash(b), obj
            except TypeError:  # a field that holds a dict or list: a frozen dataclass cannot hash it either
                pass
            assert repr(a), obj
    assert found >= 150
