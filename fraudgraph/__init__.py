"""fraudgraph composition root: the CLI, settings, the wiring of the domain packages
into services (the detector daemon and its worker, the projector, the GNN service,
the backtest, benchmarks) and the local stack.

Nothing in ingest/, detectors/, graph/, storage/, gnn/ or cypher/ imports this
package: `lint-imports` checks it (the contracts are in pyproject.toml).
"""

__version__ = "0.1.0"
