"""The backtest's protocol, without its machinery: which seeds are for tuning and which
for reporting, what decides in each variant, which fields a history can go without.

Kept apart from :mod:`fraudgraph.backtest` (which loads the learned model, the
evaluation's plots and the stream) so that the CLI can name them in its options
without importing all that: every ``fraudgraph`` command, ``--help`` included, pays
for what the CLI imports at start.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Variant:
    """What decides: a detector config, with or without the GNN's entity scores, with or
    without the learned model retrained on schedule inside the replay."""

    name: str
    config: str
    gnn: bool = False
    model: bool = False


#: The seeds of the evaluation protocol (detectors/presets/README.md): weights,
#: thresholds and model choices may look at the tuning seeds only; every figure the
#: README reports comes from the held-out seeds.
TUNING_SEEDS = (1, 2, 3, 42)
HELD_OUT_SEEDS = (101, 202, 303)

VARIANTS = {"rules": Variant("rules", "default"),
            "rules+gnn": Variant("rules+gnn", "default", gnn=True),
            "model": Variant("model", "default", model=True),
            "model+gnn": Variant("model+gnn", "default", gnn=True, model=True),
            "legacy": Variant("legacy", "legacy")}

#: optional fields a generated history can go without (``--without``): a history with
#: only card, user, site, amount and time, as many external datasets are
OPTIONAL_FIELDS = {"device": "device_id", "ip": "ip_address"}
