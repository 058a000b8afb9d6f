"""The projection's batch plan (pure): aggregates per pair, detail per transaction
unless the graph keeps detail for flagged transactions only."""

from __future__ import annotations

from graph.projection import ENTITY_FIELDS, detail_row, plan_batch
from ingest.transaction import Transaction

T0 = 1_767_225_600_000


def tx(n: int, card: str, minute: int, amount_minor: int = 1000,
       device: str | None = "d1") -> Transaction:
    return Transaction(transaction_id=f"t{n}", event_ms=T0 + minute * 60_000,
                       amount_minor=amount_minor, currency="USD", card_id=card,
                       user_id="u1", site_id="s1", country="US", device_id=device,
                       ip_address="10.0.0.1")


def test_pairs_are_summed_and_detail_follows_the_mode() -> None:
    batch = [tx(1, "c1", 5, 1000), tx(2, "c1", 1, 500, device=None), tx(3, "c2", 3, 200)]
    known = {name: set() for name in ENTITY_FIELDS} | {"sites": {"s1"}}
    full = plan_batch(batch, known)
    bare = plan_batch(batch, known, with_detail=False)
    paid = {(r["a"], r["b"]): r for r in full.relationships["paid_at"]}
    assert paid[("c1", "s1")] == {"a": "c1", "b": "s1", "count": 2, "amount_minor": 1500,
                                  "first_ms": T0 + 60_000, "last_ms": T0 + 300_000}
    assert [r["b"] for r in full.relationships["used_on"]] == ["d1", "d1"]  # no device: none
    assert full.entities["sites"] == [] and sorted(full.entities["cards"]) == ["c1", "c2"]
    assert full.transactions == [detail_row(t) for t in batch]
    assert full.projected == bare.projected == ["t1", "t2", "t3"]
    # without detail: the same entities and aggregates, no Transaction rows
    assert bare.transactions == []
    assert (bare.entities, bare.relationships) == (full.entities, full.relationships)
