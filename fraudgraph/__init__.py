"""fraudgraph composition root: CLI, settings, wiring, local stack.

Nothing in ingest/, graph/, detectors/ or gnn/ imports this package.
"""

__version__ = "0.1.0"
