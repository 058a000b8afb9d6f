"""The Quix Streams peer of `fraudgraph bench --peer quix`: the legacy system's three
rules written the way a Python team would with a maintained streaming library.

One StreamingDataFrame over the transactions topic: JSON in, a stateful ``apply``
(per message key, i.e. per card, in Quix's RocksDB store with its changelog topic),
one JSON decision out per input, at-least-once.  The rules are the `legacy` preset's:

* **velocity**: another transaction on the card within 5 minutes, of another amount;
* **amount_spike**: an amount above 2x the holder's previous maximum (USD);
* **country_hop**: another country than the holder's previous transaction within 2 h.

Each weighs 0.5 (noisy-or; review at 0.5, block at 0.8), and a flagged transaction is
not learnt into the holder's profile, as in fraudgraph.  Quix state lives under the
message key, so the holder's profile is kept per card (fraudgraph keeps it per user).

It runs in its own virtual environment (Quix Streams pins an older confluent-kafka
than fraudgraph's): `fraudgraph bench --peer quix` creates it from
``peers/requirements-quix.txt``.  Prints one JSON line: messages, busy seconds (first
message to the last one decided), CPU seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ingest.iso import PER_USD

VELOCITY_MS, HOP_MS, SPIKE = 5 * 60_000, 2 * 3_600_000, 2.0
WEIGHT, REVIEW, BLOCK = 0.5, 0.5, 0.8


def decide(tx: dict, state) -> dict:  # type: ignore[no-untyped-def]
    event_ms = int(datetime.fromisoformat(tx["timestamp"]).timestamp() * 1000)
    amount, country = float(tx["amount"]), tx["country"]
    rate = PER_USD.get(tx["currency"])
    usd = amount / rate if rate else None
    recent = [p for p in state.get("recent", []) if event_ms - VELOCITY_MS <= p[0] <= event_ms]
    profile = state.get("profile", {"count": 0, "max_usd": 0.0, "last": None})
    reasons = []
    if recent and any(p[1] != amount for p in recent):
        reasons.append("velocity")
    if usd is not None and profile["count"] >= 1 and usd > SPIKE * profile["max_usd"]:
        reasons.append("amount_spike")
    last = profile["last"]
    if last and last[1] != country and 0 <= event_ms - last[0] <= HOP_MS:
        reasons.append("country_hop")
    score = round(1 - (1 - WEIGHT) ** len(reasons), 6)
    decision = "block" if score >= BLOCK else "review" if score >= REVIEW else "allow"
    recent.append([event_ms, amount])
    state.set("recent", recent)
    if decision == "allow":  # a flagged transaction does not become the holder's normal
        profile["count"] += 1
        profile["max_usd"] = max(profile["max_usd"], usd or 0.0)
        if last is None or event_ms >= last[0]:
            profile["last"] = [event_ms, country]
        state.set("profile", profile)
    return {"transaction_id": tx["transaction_id"], "decision": decision, "score": score,
            "reasons": reasons}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True, help="transactions (JSON, keyed by card)")
    parser.add_argument("--out", required=True, help="topic for the decisions")
    parser.add_argument("--group", required=True)
    parser.add_argument("--count", type=int, required=True, help="stop after this many")
    parser.add_argument("--state-dir", required=True)
    args = parser.parse_args()
    from quixstreams import Application  # here: the rules above import without it

    app = Application(broker_address=args.bootstrap, consumer_group=args.group,
                      auto_offset_reset="earliest", processing_guarantee="at-least-once",
                      state_dir=args.state_dir, loglevel="WARNING")
    source = app.topic(args.topic, value_deserializer="json")
    sink = app.topic(args.out, value_serializer="json")
    clock: dict[str, float] = {}

    def started(value: dict) -> dict:
        if not clock:
            clock["wall"], clock["cpu"] = time.monotonic(), time.process_time()
        return value

    def finished(value: dict) -> dict:
        clock["last"] = time.monotonic()
        clock["decided"] = clock.get("decided", 0) + 1
        return value

    sdf = app.dataframe(source).update(started).apply(decide, stateful=True).update(finished)
    sdf.to_topic(sink)
    app.run(count=args.count, timeout=30.0, collect=False)  # commits before it returns
    # busy time to the last message decided: its last commit and shutdown are left out
    # (in the peer's favour; fraudgraph's figure ends with its last commit)
    print(json.dumps({"messages": int(clock.get("decided", 0)),
                      "seconds": clock.get("last", 0.0) - clock.get("wall", 0.0),
                      "cpu_seconds": time.process_time() - clock.get("cpu", 0.0)}))


if __name__ == "__main__":
    main()
