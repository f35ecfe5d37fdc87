"""What a pipeline declares about models: the task key ``model`` and the pipeline table ``[models.NAME]``.

Pure (no I/O): the pipeline parser calls :func:`check_task_model` for a
task's ``model`` key and :func:`check_models` for the ``[models]`` table, and
both put every problem, naming the file, field and value, into its errors.
The rules of model and alias names live here and nowhere else.

A task registers its output as a new version of a model::

    [tasks.package]
    call = "mlpipe.steps:package"
    outputs = ["model.npz", "metrics.json"]
    model = { name = "house_prices", path = "model.npz", metrics = "metrics.json" }

and the pipeline says how versions are judged and deployed::

    [models.house_prices]
    metrics = ["rmse", "r2"]                 # the names gates may use
    gates = ["rmse <= 60", "rmse <= champion.rmse + 2"]
    floors = ["rmse <= 80"]                  # over metrics observed after deployment: one failing rolls back
    promote = "auto"                         # auto: a passing candidate becomes `alias`; manual: never by itself
    alias = "champion"
    strategy = "blue_green"                  # direct | blue_green | canary
    [models.house_prices.deploy]
    kind = "path"                            # path | triton
    health = ["python", "check.py"]
    health_timeout = "10s"

Everything about it is in docs/models.md.
"""

from __future__ import annotations

import re
from dataclasses import asdict, field
from typing import Any, Iterable, Mapping

from ..records import frozen
from ..tomlcheck import TableReader
from .gates import EXPECTED as GATE_EXPECTED
from .gates import GateSyntaxError, check_references, parse_gate

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
NAME_EXPECTED = "1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit"
ALIAS_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
ALIAS_EXPECTED = "1 to 32 lower-case letters, digits or '_', starting with a letter"
STANDARD_ALIASES = ("champion", "challenger", "canary")
RESERVED_ALIASES = ("current", "versions", "weights", "checks", "latest")
"""Names an alias may not take: files of the serving folder, and words of gates and references."""
STRATEGIES = ("direct", "blue_green", "canary")
PROMOTE = ("auto", "manual")
TARGET_KINDS = ("path", "triton")
CANARY_MODES = ("weights", "shadow")
DIRECTIONS = ("lower", "higher")

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_WINDOW_S = 60.0


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot name a model, or None."""
    if not isinstance(name, str):
        return "is not a string"
    return None if NAME_RE.match(name) else "is not a valid model name"


def alias_problem(alias: object) -> str | None:
    """Why ``alias`` cannot name an alias, or None."""
    if not isinstance(alias, str) or not ALIAS_RE.match(alias):
        return "is not a valid alias name"
    if alias in RESERVED_ALIASES:
        return f"is reserved ({', '.join(RESERVED_ALIASES)} cannot be aliases)"
    return None


@frozen
class ModelDecl:
    """A task's ``model`` key: which model its output becomes a version of.

    ``path``: the file or folder under the task's output folder (``""``: the
    whole folder); ``metrics``: the JSON file of numbers it reports (None:
    none). Placeholders are allowed in both.
    """

    name: str
    path: str = ""
    metrics: str | None = None


@frozen
class Target:
    """Where deployed versions go and how the serving process is told (``[models.NAME.deploy]``).

    ``dir``: the serving folder (None: ``<state dir>/serving``; a relative one
    is relative to the pipeline file's folder, made absolute at registration);
    ``serve``: the alias ``current`` follows; ``reload``/``health``: argv
    arrays run without a shell, each bounded by its timeout; ``window``: how
    long a blue-green switch may wait for the health check to pass;
    ``config``: the Triton ``config.pbtxt`` template (without ``version_policy``).
    """

    kind: str = "path"
    dir: str | None = None
    serve: str = "champion"
    reload: tuple[str, ...] = ()
    health: tuple[str, ...] = ()
    reload_timeout: float = DEFAULT_TIMEOUT_S
    health_timeout: float = DEFAULT_TIMEOUT_S
    window: float = DEFAULT_WINDOW_S
    config: str | None = None


@frozen
class Canary:
    """``[models.NAME.canary]``: how a challenger is tried before it is promoted.

    ``mode``: ``weights`` (the serving process sends ``share`` of the traffic
    to it, reading ``weights.json``) or ``shadow`` (a scoring pipeline scores
    every batch with both and reports both; nothing is served by it).
    The window ends after ``batches`` observed batches or ``window`` seconds,
    whichever is set (both: the first reached). Then ``metric`` of both is
    compared (mean over the window): the challenger wins when it is not worse
    than the champion by more than ``tolerance`` (``better``: which way is better).
    """

    mode: str = "weights"
    share: float = 0.1
    batches: int | None = None
    window: float | None = None
    metric: str = ""
    better: str = "lower"
    tolerance: float = 0.0


@frozen
class ModelPolicy:
    """``[models.NAME]``: the gates of a model's candidates and its deployment. Defaults: no gates,
    promote automatically to ``champion``, switch directly, a ``path`` target."""

    name: str
    metrics: tuple[str, ...] = ()
    gates: tuple[str, ...] = ()
    floors: tuple[str, ...] = ()
    """Conditions over the metrics observed for the served version after its deployment; one failing rolls back."""
    aliases: tuple[str, ...] = STANDARD_ALIASES
    promote: str = "auto"
    alias: str = "champion"
    strategy: str = "direct"
    deploy: Target = field(default_factory=Target)
    canary: Canary | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (stored with the model at each registration: what a manual promotion deploys with)."""
        return asdict(self)

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> "ModelPolicy":
        dep = dict(d.get("deploy") or {})
        for key in ("reload", "health"):
            dep[key] = tuple(dep.get(key) or ())
        can = d.get("canary")
        return ModelPolicy(name=d["name"], metrics=tuple(d.get("metrics") or ()), gates=tuple(d.get("gates") or ()),
                           floors=tuple(d.get("floors") or ()),
                           aliases=tuple(d.get("aliases") or STANDARD_ALIASES), promote=d.get("promote", "auto"),
                           alias=d.get("alias", "champion"), strategy=d.get("strategy", "direct"),
                           deploy=Target(**dep), canary=Canary(**can) if can else None)


def default_policy(name: str) -> ModelPolicy:
    return ModelPolicy(name=name)


# -- the task key ----------------------------------------------------------------------------------

DECL_EXPECTED = ('a model name, or a table {name = "...", path = "file or folder under the outputs", '
                 'metrics = "metrics.json"}')


def check_task_model(reader: TableReader, key: str = "model") -> ModelDecl | None:
    """Read a task's ``model`` key (None when absent); problems go to the reader's errors."""
    before = len(reader.errors)
    sub = reader.name_or_table(key, DECL_EXPECTED)
    if sub is None:
        return None
    name = sub.str("name", None, required=True)
    path = sub.output_path("path")
    metrics = sub.output_path("metrics") or None
    sub.finish(["name", "path", "metrics"])
    if name is not None and name_problem(name):
        sub.fail("name", name_problem(name) or "", value=name, expected=NAME_EXPECTED)
    if len(reader.errors) > before or name is None:
        return None
    return ModelDecl(name, path, metrics)


# -- the pipeline table ------------------------------------------------------------------------------

POLICY_KEYS = ["metrics", "gates", "floors", "aliases", "promote", "alias", "strategy", "deploy", "canary"]
TARGET_KEYS = ["kind", "dir", "serve", "reload", "health", "reload_timeout", "health_timeout", "window", "config"]
CANARY_KEYS = ["mode", "share", "batches", "window", "metric", "better", "tolerance"]


def check_models(reader: TableReader, registering: Mapping[str, list[str]],
                 check_tasks: Mapping[str, list[str]]) -> dict[str, ModelPolicy]:
    """Read the pipeline's ``models`` table (``reader`` is its reader); problems go to the reader's errors.

    ``registering``: model name -> the tasks whose ``model`` key names it;
    ``check_tasks``: task -> the tasks of a built-in ``kind`` it needs
    (directly or not; every kind returns a verdict and result rows), which
    its model's gates may read as ``checks.TASK.*``. A policy for
    a model no task registers is an error (a misspelt name would never gate anything).
    """
    out: dict[str, ModelPolicy] = {}
    for name in reader.data:
        reader.seen.add(name)
        if name_problem(name):
            reader.fail(name, name_problem(name) or "", value=name, expected=NAME_EXPECTED)
            continue
        tasks = registering.get(name)
        if not tasks:
            from ..tomlcheck import suggest

            close = suggest(name, list(registering))
            reader.fail(name, "no task of this pipeline registers this model", value=name,
                        expected="a model named by some task's model key" +
                        (f" ({', '.join(registering)})" if registering else ""),
                        hint=f"did you mean {close!r}?" if close else "add model = \"NAME\" to the task that makes it")
            continue
        checks = sorted({c for t in tasks for c in check_tasks.get(t, [])})
        policy = _check_policy(reader.sub(name), name, checks)
        if policy is not None:
            out[name] = policy
    return out


def _check_policy(r: TableReader, name: str, checks: list[str]) -> ModelPolicy | None:
    before = len(r.errors)
    metrics = r.str_list("metrics", [])
    for i, m in enumerate(metrics):
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", m):
            r.fail(f"metrics[{i}]", "is not a metric name a gate can use", value=m,
                   expected="letters, digits and '_', starting with a letter or '_'")
        elif m in metrics[:i]:
            r.fail(f"metrics[{i}]", "is named twice", value=m, expected="each metric once")
    gates = r.str_list("gates", [])
    floors = r.str_list("floors", [])
    extra = r.str_list("aliases", [])
    for i, a in enumerate(extra):
        if alias_problem(a):
            r.fail(f"aliases[{i}]", alias_problem(a) or "", value=a, expected=ALIAS_EXPECTED)
    # Only the valid ones: one refused above (reserved, say) was then listed among the known aliases by the
    # next error.
    aliases = tuple(dict.fromkeys([*STANDARD_ALIASES, *(a for a in extra if not alias_problem(a))]))
    promote = r.choice("promote", PROMOTE, "auto")
    alias = r.str("alias", "champion")
    if alias is not None and alias not in aliases:
        r.fail("alias", "is not a known alias", value=alias, expected=f"one of {', '.join(aliases)}",
               hint="declare it in aliases = [...]")
    strategy = r.choice("strategy", STRATEGIES, "direct")
    deploy = _check_target(r.sub("deploy"), aliases)
    canary = _check_canary(r.sub("canary"), metrics) if r.has("canary") else None
    if strategy == "canary" and not r.has("canary") and r.has("strategy"):  # (one with errors said those alone)
        r.fail("canary", "is required with strategy = \"canary\"", expected="a [models.NAME.canary] table "
               "(mode, share, batches or window, metric, better)")
    if canary is not None and strategy != "canary":
        r.fail("strategy", "must be \"canary\" when a canary table is declared", value=strategy,
               expected="strategy = \"canary\"")
    r.finish(POLICY_KEYS)
    if (gates or floors) and not metrics:
        r.fail("metrics", f"is required when {'gates' if gates else 'floors'} are declared",
               expected="the names of the metrics the conditions use, e.g. metrics = [\"rmse\", \"r2\"]",
               hint="conditions are checked against these names when the pipeline is validated, so a misspelt "
               "metric is found before any run")
    else:
        for i, gate in enumerate(gates):
            try:
                check_references(parse_gate(gate), metrics=metrics, aliases=aliases, check_tasks=checks)
            except GateSyntaxError as exc:
                r.fail(f"gates[{i}]", exc.message, value=gate, expected=GATE_EXPECTED, hint=exc.hint)
        for i, floor in enumerate(floors):  # over observed metrics only: no alias or check references
            try:
                check_references(parse_gate(floor), metrics=metrics, aliases=(), check_tasks=None)
            except GateSyntaxError as exc:
                r.fail(f"floors[{i}]", exc.message, value=floor, expected=GATE_EXPECTED, hint=exc.hint)
    if len(r.errors) > before:
        return None
    return ModelPolicy(name=name, metrics=tuple(metrics), gates=tuple(gates), floors=tuple(floors), aliases=aliases,
                       promote=promote,
                       alias=alias, strategy=strategy, deploy=deploy or Target(), canary=canary)


def _argv(r: TableReader, key: str) -> tuple[str, ...]:
    if not r.has(key):
        return ()
    value = r.raw(key)
    if not (isinstance(value, list) and value and all(isinstance(a, str) and a for a in value)):
        r.fail(key, "must be a non-empty array of strings", value=value,
               expected='an argv array run without a shell, e.g. ["curl", "-fsS", "http://127.0.0.1:8000/health"]')
        return ()
    return tuple(value)


def _check_target(r: TableReader, aliases: Iterable[str]) -> Target | None:
    before = len(r.errors)
    kind = r.choice("kind", TARGET_KINDS, "path")
    folder = r.str("dir", None)
    serve = r.str("serve", "champion")
    known = list(aliases)
    if serve is not None and serve not in known:
        r.fail("serve", "is not a known alias", value=serve, expected=f"one of {', '.join(known)}")
    reload = _argv(r, "reload")
    health = _argv(r, "health")
    timeouts = {}
    for key in ("reload_timeout", "health_timeout", "window"):
        v = r.duration(key, None)
        if v is not None and v <= 0:
            r.fail(key, "must be positive", value=r.data.get(key), expected="a duration > 0")
        timeouts[key] = v
    config = r.str("config", None)
    if config is not None and kind != "triton":
        r.fail("config", "is only used by kind = \"triton\"", value=config, expected="kind = \"triton\"")
    r.finish(TARGET_KEYS)
    if len(r.errors) > before:
        return None
    return Target(kind=kind, dir=folder, serve=serve, reload=reload, health=health,
                  reload_timeout=timeouts["reload_timeout"] or DEFAULT_TIMEOUT_S,
                  health_timeout=timeouts["health_timeout"] or DEFAULT_TIMEOUT_S,
                  window=timeouts["window"] or DEFAULT_WINDOW_S, config=config)


def _check_canary(r: TableReader, metrics: list[str]) -> Canary | None:
    before = len(r.errors)
    mode = r.choice("mode", CANARY_MODES, "weights")
    share = r.number("share", 0.1, minimum=0.0)
    if share is not None and not 0 < share < 1:
        r.fail("share", "is out of range", value=share, expected="a fraction between 0 and 1 (exclusive)")
    batches = r.int("batches", None, minimum=1, maximum=1_000_000)
    window = r.duration("window", None)
    if window is not None and window <= 0:
        r.fail("window", "must be positive", value=r.data.get("window"), expected="a duration > 0")
    if batches is None and window is None and len(r.errors) == before:
        r.fail(None, "needs a window", expected="batches = N and/or window = \"DURATION\"")
    metric = r.str("metric", None, required=True)
    if metric is not None and metrics and metric not in metrics:
        r.fail("metric", "is not a declared metric", value=metric, expected=f"one of {', '.join(metrics)}")
    better = r.choice("better", DIRECTIONS, "lower")
    tolerance = r.number("tolerance", 0.0, minimum=0.0)
    r.finish(CANARY_KEYS)
    if len(r.errors) > before or metric is None:
        return None
    return Canary(mode=mode, share=share, batches=batches, window=window, metric=metric, better=better,
                  tolerance=tolerance)
