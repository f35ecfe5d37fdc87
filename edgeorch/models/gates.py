"""Promotion gate expressions: a small, safe language parsed here and evaluated here (pure; no ``eval``).

A gate is one string of conditions joined by ``and``::

    rmse <= 30000
    auc >= champion.auc - 0.005 and auc >= 0.7
    checks.fairness.demographic_parity_difference <= 0.1
    checks.drift.flagged_share < 0.3 and checks.schema.passed == 1

Grammar (whitespace is free; ``#`` is not a comment)::

    gate       := condition ("and" condition)*
    condition  := sum OP sum                 OP: < <= > >= == !=
    sum        := product (("+" | "-") product)*
    product    := unary ("*" unary)*
    unary      := "-" unary | atom
    atom       := NUMBER | reference | "(" sum ")"
    reference  := NAME | ALIAS "." NAME | "checks" "." TASK "." NAME

What a reference names:

- ``NAME``: the candidate's metric (from the metrics file its task wrote);
- ``ALIAS.NAME``: the same metric of the version the alias points at when
  the gate is evaluated (``champion.rmse``);
- ``checks.TASK.NAME``: a result of the built-in check task ``TASK`` of the
  same run: ``passed`` (1 when its verdict was ok or warn, 0 on a violation),
  ``flagged_share`` (the share of its result rows whose verdict is not
  ``ok``: drifted columns, broken fairness limits, failed schema checks), or
  a metric of its rows (the largest value when several rows carry it).

Every problem is a :class:`GateSyntaxError` with the position and a hint,
turned by the pipeline parser into an error naming the file and field.
Which names and aliases are known is the caller's (:func:`check_references`).

Evaluation (:func:`evaluate`) gives each condition its ``value`` (the left
side), ``threshold`` (the right side) and ``verdict``: ``passed``,
``failed``, or ``skipped`` when it compares with an alias that points at no
version yet (a first candidate has no champion to beat), with the words of
why. A missing metric of the candidate, or of a check, fails its condition.
"""

from __future__ import annotations

import math
import re
from dataclasses import field
from typing import Any, Callable, Iterable, Mapping, Union

from ..records import frozen

OPERATORS = ("<=", ">=", "==", "!=", "<", ">")
OP_WORDS = {"<=": "at most", ">=": "at least", "==": "equal to", "!=": "different from", "<": "below",
            ">": "above"}
CHECK_VALUES = ("passed", "flagged_share")
"""The derived values every check task has (besides the metrics of its rows)."""

EXPECTED = ("conditions like 'rmse <= 30000' or 'auc >= champion.auc - 0.005', joined by 'and' "
            "(operators < <= > >= == !=; + - * and parentheses on either side)")

MAX_DEPTH = 64
"""The deepest a gate's expression may nest: each parenthesis, minus sign and ``+ - *`` operator of a chain is a
level. Parsing, reading and evaluating a gate recurse once per level, so without a bound a hostile pipeline file
(2,000 parentheses, 5,000 minus signs) ran out of Python's stack: an internal error instead of a refusal. Every
place that parses a gate or a floor goes through :func:`parse_gate`, so this one rule holds for all of them."""

# ASCII digits only (re.ASCII): ``\d`` also matched other scripts' digits ('rmse <= ٣'), which float() reads.
_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<op><=|>=|==|!=|<|>)
  | (?P<arith>[-+*])
  | (?P<paren>[()])
""", re.VERBOSE | re.ASCII)


class GateSyntaxError(ValueError):
    """A gate that cannot be parsed or names what does not exist: ``message`` and ``hint`` for the user."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


# -- the tree ----------------------------------------------------------------------------------


@frozen
class Num:
    """A number in a gate expression."""

    value: float


@frozen
class Ref:
    """A name: ``scope`` is ``candidate``, ``alias`` (``alias`` set) or ``check`` (``task`` set)."""

    text: str
    scope: str
    name: str
    alias: str | None = None
    task: str | None = None


@frozen
class Neg:
    """``-operand`` in a gate expression."""

    operand: "Expr"


@frozen
class BinOp:
    """``left op right`` in a gate expression (``op``: ``+``, ``-`` or ``*``)."""

    op: str
    left: "Expr"
    right: "Expr"


Expr = Union[Num, Ref, Neg, BinOp]


@frozen
class Condition:
    """One comparison; ``text`` is its source, normalised (single spaces)."""

    text: str
    op: str
    left: Expr
    right: Expr
    left_text: str
    right_text: str

    def refs(self) -> list[Ref]:
        return [*_refs(self.left), *_refs(self.right)]


def _refs(e: Expr) -> list[Ref]:
    if isinstance(e, Ref):
        return [e]
    if isinstance(e, Neg):
        return _refs(e.operand)
    if isinstance(e, BinOp):
        return [*_refs(e.left), *_refs(e.right)]
    return []


# -- parsing -----------------------------------------------------------------------------------


def parse_gate(text: str) -> list[Condition]:
    """The conditions of one gate string; raises :class:`GateSyntaxError` naming the position and the problem,
    and for an expression nested deeper than :data:`MAX_DEPTH` levels (so no caller meets a RecursionError)."""
    if not isinstance(text, str) or not text.strip():
        raise GateSyntaxError("is empty", hint="write a condition such as 'rmse <= 30000'")
    tokens = _tokenize(text)
    parser = _Parser(text, tokens)
    conditions = [parser.condition()]
    while parser.peek_word("and"):
        parser.pos += 1
        conditions.append(parser.condition())
    if parser.pos < len(tokens):
        kind, value, at = tokens[parser.pos]
        if kind == "name" and value in ("or", "not"):
            raise GateSyntaxError(f"'{value}' is not supported (at character {at + 1})",
                                  hint="write separate conditions joined by 'and'; every gate must pass")
        raise GateSyntaxError(f"unexpected {value!r} at character {at + 1}",
                              hint="join conditions with 'and'")
    return conditions


def _tokenize(text: str) -> list[tuple[str, str, int]]:
    out: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            bad = text[pos]
            if text.startswith("=>", pos) or text.startswith("=<", pos):
                raise GateSyntaxError(f"'{text[pos:pos + 2]}' is not an operator (at character {pos + 1})",
                                      hint=f"write '{text[pos + 1]}='")
            if bad == "=":
                raise GateSyntaxError(f"'=' is not an operator (at character {pos + 1})", hint="compare with '=='")
            if bad == "/":
                raise GateSyntaxError(f"'/' is not supported (at character {pos + 1})",
                                      hint="multiply instead: 'x <= y * 0.5'")
            if bad in "&|!":
                raise GateSyntaxError(f"{bad!r} is not an operator (at character {pos + 1})",
                                      hint="join conditions with 'and'")
            raise GateSyntaxError(f"unexpected character {bad!r} at character {pos + 1}")
        kind = m.lastgroup or ""
        if kind != "space":
            out.append((kind, m.group(), pos))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str, tokens: list[tuple[str, str, int]]) -> None:
        self.text = text
        self.tokens = tokens
        self.pos = 0
        self.open = 0  # the '(' and minus signs the parser is inside of now (its recursion depth, bounded)

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def peek_word(self, word: str) -> bool:
        t = self.peek()
        return t is not None and t[0] == "name" and t[1] == word

    def condition(self) -> Condition:
        start = self.pos
        left, _ = self.sum()
        t = self.peek()
        if t is None or t[0] != "op":
            shown = self._source(start, self.pos)
            after = f" after {shown!r}" if shown else ""
            found = f", found {t[1]!r}" if t is not None else ""
            raise GateSyntaxError(f"expected a comparison ({', '.join(OPERATORS)}){after}{found}")
        self.pos += 1
        mid = self.pos
        right, _ = self.sum()
        t = self.peek()
        if t is not None and t[0] == "op":
            raise GateSyntaxError(f"comparisons cannot be chained ({t[1]!r} at character {t[2] + 1})",
                                  hint="write two conditions joined by 'and'")
        left_text, right_text = self._source(start, mid - 1), self._source(mid, self.pos)
        return Condition(f"{left_text} {t_op(self.tokens[mid - 1])} {right_text}", t_op(self.tokens[mid - 1]), left,
                         right, left_text, right_text)

    def _source(self, a: int, b: int) -> str:
        """The normalised text of tokens ``a`` up to ``b`` (exclusive)."""
        parts: list[str] = []
        for kind, value, _ in self.tokens[a:b]:
            if kind == "arith" and parts and parts[-1] not in ("(", "-", "+", "*"):
                parts.append(f" {value} ")
            else:
                parts.append(value)
        return "".join(parts).replace("( ", "(").strip()

    # Each rule returns its expression with its depth (levels of nesting below and including it), so that a
    # tree deeper than MAX_DEPTH is refused where it is built. A chain 'a + b + ...' is built left-deep: each
    # operator is a level. Parentheses and minus signs are also counted on the way down (``self.open``): the
    # parser's own recursion stops at MAX_DEPTH too, before Python's stack does.

    def sum(self) -> tuple[Expr, int]:
        left, depth = self.product()
        while (t := self.peek()) is not None and t[0] == "arith" and t[1] in "+-":
            self.pos += 1
            right, right_depth = self.product()
            left, depth = BinOp(t[1], left, right), _deeper(max(depth, right_depth), t)
        return left, depth

    def product(self) -> tuple[Expr, int]:
        left, depth = self.unary()
        while (t := self.peek()) is not None and t[0] == "arith" and t[1] == "*":
            self.pos += 1
            right, right_depth = self.unary()
            left, depth = BinOp("*", left, right), _deeper(max(depth, right_depth), t)
        return left, depth

    def unary(self) -> tuple[Expr, int]:
        t = self.peek()
        if t is not None and t[0] == "arith" and t[1] == "-":
            self.pos += 1
            operand, depth = self._nested(t, self.unary)
            return Neg(operand), _deeper(depth, t)
        return self.atom()

    def _nested(self, token: tuple[str, str, int], rule: Callable[[], tuple[Expr, int]]) -> tuple[Expr, int]:
        """``rule()`` one level further down (after ``token``, a '(' or a minus sign), refused past MAX_DEPTH."""
        self.open = _deeper(self.open, token)
        try:
            return rule()
        finally:
            self.open -= 1

    def atom(self) -> tuple[Expr, int]:
        t = self.peek()
        if t is None:
            raise GateSyntaxError("ends too early: a number or a metric name is missing")
        kind, value, at = t
        self.pos += 1
        if kind == "number":
            number = float(value)
            if not math.isfinite(number):  # "rmse <= 1e999" read as infinity: a gate that always passed
                raise GateSyntaxError(f"the number {value} at character {at + 1} is too large (a float holds up to "
                                      "about 1.8e308)")
            return Num(number), 0
        if kind == "name":
            if value in ("and", "or", "not"):
                raise GateSyntaxError(f"expected a number or a metric name at character {at + 1}, found {value!r}")
            return _reference(value), 0
        if value == "(":
            inner, depth = self._nested(t, self.sum)
            close = self.peek()
            if close is None or close[1] != ")":
                raise GateSyntaxError(f"the '(' at character {at + 1} is never closed")
            self.pos += 1
            return inner, _deeper(depth, t)
        raise GateSyntaxError(f"expected a number or a metric name at character {at + 1}, found {value!r}")


def _deeper(depth: int, token: tuple[str, str, int]) -> int:
    """``depth + 1``: one more level, at ``token`` (a '(', a minus sign or an operator); past :data:`MAX_DEPTH`, a
    :class:`GateSyntaxError` naming the limit and where it was passed."""
    if depth + 1 > MAX_DEPTH:
        raise GateSyntaxError(f"is nested too deeply: more than {MAX_DEPTH} levels at {token[1]!r} (character "
                              f"{token[2] + 1}; each parenthesis, minus sign and + - * of a chain is a level)",
                              hint="split it into simpler conditions joined by 'and'")
    return depth + 1


def t_op(token: tuple[str, str, int]) -> str:
    return token[1]


def _reference(text: str) -> Ref:
    parts = text.split(".")
    if len(parts) == 1:
        return Ref(text, "candidate", text)
    if parts[0] == "checks":
        if len(parts) != 3:
            raise GateSyntaxError(f"{text!r} is not a check result",
                                  hint="write checks.TASK.passed, checks.TASK.flagged_share or checks.TASK.METRIC")
        return Ref(text, "check", parts[2], task=parts[1])
    if len(parts) == 2:
        return Ref(text, "alias", parts[1], alias=parts[0])
    raise GateSyntaxError(f"{text!r} has too many parts",
                          hint="write METRIC, ALIAS.METRIC (champion.rmse) or checks.TASK.METRIC")


# -- validation of names -------------------------------------------------------------------------


def check_references(conditions: Iterable[Condition], *, metrics: Iterable[str] | None, aliases: Iterable[str],
                     check_tasks: Iterable[str] | None) -> None:
    """Raise :class:`GateSyntaxError` for the first reference that names an unknown metric, alias or check task.

    ``metrics``: the candidate's declared metric names (None: any name is
    accepted, checked when the gate runs); ``aliases``: the known alias
    names; ``check_tasks``: the tasks whose results a gate may read (None:
    no ``checks.`` reference is allowed here).
    """
    known_metrics = None if metrics is None else list(metrics)
    known_aliases = list(aliases)
    tasks = None if check_tasks is None else list(check_tasks)
    for cond in conditions:
        for ref in cond.refs():
            if ref.scope == "alias" and ref.alias not in known_aliases:
                raise GateSyntaxError(f"unknown alias {ref.alias!r} (in {ref.text!r})",
                                      hint=(f"known aliases: {', '.join(known_aliases)}"
                                            f"{_close(ref.alias, known_aliases)}") if known_aliases else
                                      "no alias can be named here (a floor reads the metrics observed for the "
                                      "version served)")
            if ref.scope == "check":
                if tasks is None:
                    raise GateSyntaxError(f"{ref.text!r}: check results cannot be used here",
                                          hint="use the metrics file's names and numbers")
                if ref.task not in tasks:
                    raise GateSyntaxError(
                        f"{ref.text!r} names {ref.task!r}, which is not a check task this model's task needs",
                        hint=(f"check tasks it needs: {', '.join(tasks)}" if tasks else
                              "add a task of a built-in kind (validate, drift, fairness, gate, ...) to the "
                              "registering task's needs") + _close(ref.task, tasks))
                continue
            if known_metrics is not None and ref.name not in known_metrics:
                raise GateSyntaxError(f"unknown metric {ref.name!r}" + (f" (in {ref.text!r})" if ref.text != ref.name else ""),
                                      hint=(f"declared metrics: {', '.join(known_metrics)}" if known_metrics else
                                            "declare the metric names in the model's metrics list")
                                      + _close(ref.name, known_metrics))


def _close(name: str | None, options: list[str]) -> str:
    from difflib import get_close_matches

    if not name:
        return ""
    hit = get_close_matches(name, options, n=1)
    return f"; did you mean {hit[0]!r}?" if hit else ""


# -- evaluation ----------------------------------------------------------------------------------


@frozen
class Holder:
    """The version an alias points at, with its metrics."""

    version: int
    metrics: Mapping[str, float]


@frozen
class CheckResult:
    """What a check task of the run recorded: its verdict and its result rows (``metric``, ``value``, ``verdict``)."""

    verdict: str | None
    rows: tuple[Mapping[str, Any], ...] = ()

    def value(self, name: str) -> float | None:
        if name == "passed":
            return None if self.verdict is None else float(self.verdict in ("ok", "warn"))
        if name == "flagged_share":
            if not self.rows:
                return 0.0 if self.verdict is not None else None
            return sum(1 for r in self.rows if r.get("verdict") not in ("ok", None)) / len(self.rows)
        values = [float(r["value"]) for r in self.rows if r.get("metric") == name and _number(r.get("value"))]
        return max(values) if values else None


@frozen
class GateInputs:
    """What a gate is evaluated against: the candidate's metrics, the alias holders, the run's check results."""

    metrics: Mapping[str, float]
    holders: Mapping[str, Holder] = field(default_factory=dict)
    checks: Mapping[str, CheckResult] = field(default_factory=dict)


@frozen
class Outcome:
    """One condition's evaluation: the record kept with the decision."""

    condition: str
    value: float | None
    threshold: float | None
    verdict: str  # passed | failed | skipped
    why: str

    def to_dict(self) -> dict[str, Any]:
        return {"condition": self.condition, "value": self.value, "threshold": self.threshold,
                "verdict": self.verdict, "why": self.why}


class _Missing(Exception):
    def __init__(self, ref: Ref, skip: bool, why: str) -> None:
        self.ref, self.skip, self.why = ref, skip, why


def evaluate(gates: Iterable[str], inputs: GateInputs) -> list[Outcome]:
    """Every condition of every gate, evaluated (gates are re-parsed: they were validated at parse time)."""
    out: list[Outcome] = []
    for gate in gates:
        for cond in parse_gate(gate):
            out.append(evaluate_condition(cond, inputs))
    return out


def verdict_of(outcomes: Iterable[Outcome]) -> str:
    """``failed`` when any condition failed, else ``passed`` (skipped conditions do not block)."""
    return "failed" if any(o.verdict == "failed" for o in outcomes) else "passed"


def evaluate_condition(cond: Condition, inputs: GateInputs) -> Outcome:
    try:
        left = _eval(cond.left, inputs)
        right = _eval(cond.right, inputs)
    except _Missing as miss:
        return Outcome(cond.text, None, None, "skipped" if miss.skip else "failed", miss.why)
    ok = _compare(cond.op, left, right)
    words = cond.left_text if _literal(cond.left_text, left) else f"{cond.left_text} is {_fmt(left)}"
    wanted = (f"{OP_WORDS[cond.op]} {cond.right_text}" if _literal(cond.right_text, right) else
              f"{OP_WORDS[cond.op]} {cond.right_text} = {_fmt(right)}")
    why = f"{words}, {'which is' if ok else 'but it had to be'} {wanted}"
    return Outcome(cond.text, left, right, "passed" if ok else "failed", why)


def _compare(op: str, a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return False
    return {"<=": a <= b, ">=": a >= b, "==": a == b, "!=": a != b, "<": a < b, ">": a > b}[op]


def _eval(e: Expr, inputs: GateInputs) -> float:
    if isinstance(e, Num):
        return e.value
    if isinstance(e, Neg):
        return -_eval(e.operand, inputs)
    if isinstance(e, BinOp):
        a, b = _eval(e.left, inputs), _eval(e.right, inputs)
        return a + b if e.op == "+" else a - b if e.op == "-" else a * b
    assert isinstance(e, Ref)
    if e.scope == "candidate":
        v = inputs.metrics.get(e.name)
        if not _number(v):
            raise _Missing(e, False, f"the candidate reported no {e.name}")
        return float(v)  # type: ignore[arg-type]
    if e.scope == "alias":
        holder = inputs.holders.get(e.alias or "")
        if holder is None:
            raise _Missing(e, True, f"no version is {e.alias} yet, so there is nothing to compare with")
        v = holder.metrics.get(e.name)
        if not _number(v):
            raise _Missing(e, True, f"{e.alias} (version {holder.version}) has no {e.name} to compare with")
        return float(v)  # type: ignore[arg-type]
    check = inputs.checks.get(e.task or "")
    v = None if check is None else check.value(e.name)
    if v is None:
        raise _Missing(e, False, f"the check task {e.task} recorded no {e.name}"
                       + (" (it did not run in this run)" if check is None else ""))
    return v


def _literal(text: str, value: float) -> bool:
    """Whether ``text`` is just the number ``value`` written out (then it is not repeated as '= value')."""
    try:
        return float(text) == value
    except ValueError:
        return False


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


def _fmt(v: float) -> str:
    """A number the way a person reads it: integers without '.0', else up to 6 significant digits."""
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.6g}"
