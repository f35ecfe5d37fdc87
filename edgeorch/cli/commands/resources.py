"""``edgeorch resources``: cores, memory, GPUs, leases and the queue from the daemon; without one, the inventory."""

from __future__ import annotations

import argparse
from typing import Any

from ...textui import format_bytes, print_json, printable
from ..backend import connect, load
from ..exits import EXIT_OK
from . import AddCommand


def register(add: AddCommand) -> None:
    add("resources", cmd_resources, "cores, memory and GPUs (live readings), who holds what, and the queue "
                                    "with each waiting task's reason; with [executor] kind = \"ray\": the "
                                    "cluster's nodes and what edgeorch holds on each; without a daemon: the "
                                    "inventory only")


def cmd_resources(args: argparse.Namespace) -> int:
    """Cores, memory, GPUs, leases and the queue from the daemon; without one, this machine's inventory."""
    cfg = load(args)
    with connect(cfg) as backend:
        if backend.online:
            rep = backend.client.call("resources")
        elif cfg.executor.kind == "ray":  # the cluster's nodes, read from it (Ray is imported only here)
            from ...engine.executors.ray.executor import static_cluster_report

            rep = static_cluster_report(cfg)
        else:
            from ...resources.admission import static_report

            rep = static_report(cfg.resources, parallelism=cfg.engine.parallelism)
    rep["daemon"] = backend.online
    if args.json:
        print_json(rep)
        return EXIT_OK
    for line in _resources_lines(rep):
        print(line)
    return EXIT_OK


def _size(n: int | None) -> str:
    """Sizes in tables: one rule (:func:`~edgeorch.textui.format_bytes`): 29 KB is ``28.3K``, never ``0M``."""
    return format_bytes(n)


def _resources_lines(rep: dict[str, Any]) -> list[str]:
    """The text form of ``edgeorch resources`` (one fact per line, grep-able)."""
    if rep.get("cluster") is not None:
        return _cluster_lines(rep)
    cpus, mem = rep["cpus"], rep["memory"]
    out = [f"cores     {cpus['usable']} usable" + (f" (reserved for the daemon: {cpus['reserved']})" if cpus["reserved"] else "")
           + f", free: {cpus['free'] or 'none'}"]
    out += _core_lines(cpus["cores"])
    out.append(f"memory    {_size(mem['available_now'])} available now, {_size(mem['leased'])} leased; {mem['enforcement']}")
    out.append(f"GPUs      {rep['gpu_backend']}")
    for g in rep["gpus"]:
        live = ""
        if "memory_free" in g:
            util = f", util {g['utilization']}%" if g.get("utilization") is not None else ""
            temp = f", {g['temperature']}C" if g.get("temperature") is not None else ""
            ecc = f", uncorrected ECC {g['ecc_uncorrected']}" if g.get("ecc_uncorrected") else ""
            live = f", free {_size(g['memory_free'])}{util}{temp}{ecc}"
        elif g.get("error"):
            live = f", reading failed: {g['error']}"
        drained = f"  DRAINED: {g['drained']}" if g.get("drained") else ""
        held = ""
        if g.get("held_whole_by"):
            held = f", held whole by {printable(g['held_whole_by'])}"
        elif g.get("shares"):
            held = f", leased {_size(g['leased_memory'])} in {g['shares']} share(s)"
        out.append(f"  {g['uuid']} {g['name']} {_size(g['memory_total'])}{live}{held}{drained}")
    return out + _daemon_lines(rep)


def _core_lines(cores: list[dict[str, Any]]) -> list[str]:
    """One line per NUMA node and holder (``cores 0-3,8 (NUMA node 0): free``), in the order of their first
    core: a 128-core machine is a few lines, not 128; a lone core keeps ``core N``."""
    from ...resources.cpus import core_groups

    return [f"  {which}{f' (NUMA node {node})' if node >= 0 else ''}: " + (f"held by {holder}" if holder else "free")
            for (node, holder), which in core_groups((c["id"], (c["numa_node"], c["held_by"])) for c in cores)]


def _cluster_lines(rep: dict[str, Any]) -> list[str]:
    """A cluster executor's nodes (totals, and what edgeorch's attempts hold on each), then the daemon's part."""
    nodes = rep["cluster"]["nodes"]
    alive = [n for n in nodes if n["alive"]]
    out = [f"cluster   Ray: {len(alive)} node{'s' if len(alive) != 1 else ''} alive"
           f"{f', {len(nodes) - len(alive)} dead' if len(nodes) != len(alive) else ''}; "
           f"{sum(n['cpus'] for n in alive):g} CPUs, {sum(n['gpus'] for n in alive):g} GPUs in all"]
    for n in nodes:
        gpus = ""
        if n["gpus"]:
            models = "/".join(n["gpu_models"]) or "GPU"
            each = f" ({_size(n['gpu_memory'])} each)" if n["gpu_memory"] else ""
            gpus = f", GPUs {n['gpus']:g} {models}{each}"
        h = n["held"]
        held = (f"edgeorch holds cpus {h['cpus']}, GPUs {h['gpus']}, GPU shares {h['gpu_shares']}, "
                f"memory {_size(h['memory'])}")
        attempts = ", ".join(f"run {a['run_id']} {a['task']} ({_attempt(a)})" for a in n["attempts"])
        out.append(f"  node {n['address']} ({n['node_id'][:12]}) {'alive' if n['alive'] else 'DEAD'}: "
                   f"cpus {n['cpus']:g}{gpus}, memory {_size(n['memory'])}; {held}" + (f": {attempts}" if attempts else ""))
    for a in rep["cluster"]["unplaced"]:
        out.append(f"  not placed yet: run {a['run_id']} {a['task']} ({_attempt(a)})")
    return out + _daemon_lines(rep)


def _attempt(item: dict[str, Any]) -> str:
    """``attempt N`` as `show` numbers it (``logs --attempt N``); the row's id where the number is not known."""
    return f"attempt {item['attempt']}" if item.get("attempt") is not None else f"attempt id {item['attempt_id']}"


def _daemon_lines(rep: dict[str, Any]) -> list[str]:
    """Pools, then what only a daemon knows: running tasks, leases, the queue."""
    out = []
    for name, p in rep["pools"].items():
        out.append(f"pool      {name}: {p['free']}/{p['size']} free")
    if not rep["daemon"]:
        out.append("no daemon is running: inventory only, no leases and no queue")
        return out
    out.append(f"running   {rep['running']} task(s) (parallelism {rep['parallelism']}), "
               f"{rep['running_unleased']} without a lease")
    out.append(f"leases    {len(rep['leases'])}")
    for lease in rep["leases"]:
        parts = [f"cores {','.join(map(str, lease['cores']))}" if lease["cores"] else f"shares cores {lease['affinity']}"]
        if lease["memory"]:
            parts.append(f"memory {_size(lease['memory'])}")
        if lease["gpus"]:
            kind = "whole" if lease["gpu_exclusive"] else f"share {_size(lease['gpu_memory'])}"
            parts.append(f"GPUs {','.join(lease['gpus'])} ({kind})")
        if lease["pool"]:
            parts.append(f"pool {lease['pool']}")
        out.append(f"  run {lease['run_id']} {lease['task']} ({_attempt(lease)}): " + "; ".join(parts))
    out.append(f"queue     {len(rep['queue'])} waiting")
    for q in rep["queue"]:
        out.append(f"  {q['task']} ({q['pipeline']}, critical path {q['critical_path_s']:g}s): {q['reason']}")
    return out
