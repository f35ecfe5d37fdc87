"""Pipelines: parse and validate pipeline TOML files, params, placeholders, DAG checks, the folder registry.

Modules (each depends only on those above it):

- :mod:`.graph`: dependency cycle and topological order of a task graph;
- :mod:`.substitute`: ``{name}`` placeholders, checked at parse time, substituted at run time;
- :mod:`.params`: typing a param value, resolving a run's params, ``-p key=value``;
- :mod:`.parse`: a TOML table to a :class:`~edgeorch.model.Pipeline`, every problem collected;
- :mod:`.load`: reading files once and bounded, validating a file or folder, why a name is not loaded;
- :mod:`.registry`: the pipelines-folder registry the daemon reloads (scan in a worker, apply on the loop);
- :mod:`.document`: a pipeline as the JSON that ``pipelines.list``/``.show`` and the offline CLI print.

The names below are what the rest of edgeorch imports; import them from ``edgeorch.pipelines``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazyexports import lazy_exports
from .substitute import BUILTIN_PLACEHOLDERS, placeholder_problem, substitute, substitute_deep  # see below

# The rest load on first use (PEP 562; issue 11): a command that only needs `-p key=value` parsed
# must not pay for the parser, the loader and the registry. `substitute` names a module too, so its
# module is imported above (edgeorch/lazyexports.py says why).
_EXPORTS: dict[str, str] = {
    "pipeline_document": "document", "pipeline_summary": "document",
    "find_cycle": "graph", "topological_order": "graph",
    "MAX_PIPELINE_BYTES": "load", "ValidationReport": "load", "load_pipeline_bytes": "load",
    "load_named": "load", "load_pipeline_file": "load", "names_a_file": "load", "not_loaded_error": "load",
    "pipeline_files": "load",
    "read_pipeline_bytes": "load", "validate_path": "load",
    "coerce_param": "params", "parse_param_args": "params", "resolve_params": "params",
    "PIPELINE_KEYS": "parse", "TASK_KEYS": "parse", "definition_hash": "parse", "parse_pipeline": "parse",
    "pipeline_triggers": "parse",
    "FileScan": "registry", "FolderScan": "registry", "PipelineRegistry": "registry", "ReloadResult": "registry",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from .document import pipeline_document, pipeline_summary
    from .graph import find_cycle, topological_order
    from .load import (
        MAX_PIPELINE_BYTES,
        ValidationReport,
        load_named,
        load_pipeline_bytes,
        load_pipeline_file,
        names_a_file,
        not_loaded_error,
        pipeline_files,
        read_pipeline_bytes,
        validate_path,
    )
    from .params import coerce_param, parse_param_args, resolve_params
    from .parse import PIPELINE_KEYS, TASK_KEYS, definition_hash, parse_pipeline, pipeline_triggers
    from .registry import FileScan, FolderScan, PipelineRegistry, ReloadResult

__all__ = [
    "BUILTIN_PLACEHOLDERS", "MAX_PIPELINE_BYTES", "PIPELINE_KEYS", "TASK_KEYS", "FileScan", "FolderScan",
    "PipelineRegistry", "ReloadResult", "ValidationReport", "coerce_param", "definition_hash", "find_cycle",
    "load_named", "load_pipeline_bytes", "load_pipeline_file", "names_a_file", "not_loaded_error", "parse_param_args",
    "parse_pipeline",
    "pipeline_document", "pipeline_summary",
    "pipeline_files", "pipeline_triggers", "placeholder_problem", "read_pipeline_bytes", "resolve_params",
    "substitute", "substitute_deep", "topological_order", "validate_path",
]
