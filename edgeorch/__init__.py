"""edgeorch: a single-machine orchestrator for ML and data pipelines."""
__version__ = "0.1.0"
