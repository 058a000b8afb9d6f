"""BlocklistCache: throttled refresh, local adds, expiry and revocation (a fake loader)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from detectors.blocklist import BlocklistCache, Entry, NewEntry, collapse

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


class Clocks:
    """A monotonic clock and a wall clock that tests move by hand."""

    def __init__(self) -> None:
        self.mono = 100.0
        self.wall = T0

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += timedelta(seconds=seconds)


class FakeStore:
    """Loader behind changed_since(): returns the queued batches, records watermarks."""

    def __init__(self) -> None:
        self.batches: list[list[Entry]] = []
        self.calls: list[datetime | None] = []

    def load(self, watermark: datetime | None) -> tuple[list[Entry], datetime | None]:
        self.calls.append(watermark)
        batch = self.batches.pop(0) if self.batches else []
        return batch, max((e.updated_at for e in batch), default=watermark)


def entry(entity_id: str, updated: datetime = T0, expires: datetime | None = None,
          revoked: datetime | None = None, score: float = 0.9,
          entity_type: str = "card") -> Entry:
    return Entry(entity_type, entity_id, "reason", "rule", score, {}, T0, updated, expires,
                 revoked, "analyst" if revoked else None)


@pytest.fixture
def clocks() -> Clocks:
    return Clocks()


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def cache(store: FakeStore, clocks: Clocks) -> BlocklistCache:
    return BlocklistCache(store.load, refresh_seconds=1.0, clock=lambda: clocks.mono,
                          now=lambda: clocks.wall)


def test_refresh_calls_the_loader_at_most_once_per_interval(
        cache: BlocklistCache, store: FakeStore, clocks: Clocks) -> None:
    store.batches = [[entry("c1")], [entry("c2", updated=T0 + timedelta(seconds=1))]]
    assert cache.refresh() == 1
    for _ in range(1000):  # one call per transaction costs nothing within the interval
        assert cache.refresh() == 0
    clocks.advance(0.5)
    assert cache.refresh() == 0
    assert store.calls == [None]
    clocks.advance(0.5)
    assert cache.refresh() == 1
    assert store.calls == [None, T0]
    assert cache.watermark == T0 + timedelta(seconds=1)
    assert [cache.hit("card", "c1"), cache.hit("card", "c2")] == [
        entry("c1"), entry("c2", updated=T0 + timedelta(seconds=1))]
    assert len(cache) == 2


def test_force_refresh_ignores_the_interval(
        cache: BlocklistCache, store: FakeStore) -> None:
    store.batches = [[entry("c1")], [entry("c2")]]
    assert cache.refresh() == 1
    assert cache.refresh(force=True) == 1
    assert len(store.calls) == 2
    assert len(cache) == 2


def test_a_failing_loader_is_throttled_too(clocks: Clocks) -> None:
    calls: list[datetime | None] = []

    def broken(watermark: datetime | None) -> tuple[list[Entry], datetime | None]:
        calls.append(watermark)
        raise ConnectionError("database down")

    cache = BlocklistCache(broken, clock=lambda: clocks.mono, now=lambda: clocks.wall)
    with pytest.raises(ConnectionError):
        cache.refresh()
    assert cache.refresh() == 0
    assert len(calls) == 1


def test_hit_is_none_for_unknown_entities(cache: BlocklistCache, store: FakeStore) -> None:
    store.batches = [[entry("c1")]]
    cache.refresh()
    assert cache.hit("card", "other") is None
    assert cache.hit("user", "c1") is None  # the type is part of the key


def test_entries_expire_at_their_expiry(cache: BlocklistCache, store: FakeStore,
                                        clocks: Clocks) -> None:
    store.batches = [[entry("c1", expires=T0 + timedelta(seconds=10)), entry("c2")]]
    cache.refresh()
    clocks.advance(9.9)
    assert cache.hit("card", "c1") is not None
    assert len(cache) == 2
    clocks.advance(0.1)  # expires_at == now: no longer active
    assert cache.hit("card", "c1") is None
    assert len(cache) == 1
    clocks.advance(10 * 365 * 86_400)
    assert cache.hit("card", "c2") == entry("c2")  # expires_at None: never expires


def test_already_expired_rows_from_the_loader_are_not_cached(
        cache: BlocklistCache, store: FakeStore) -> None:
    store.batches = [[entry("c1", expires=T0 - timedelta(seconds=1))]]
    assert cache.refresh() == 1
    assert cache.hit("card", "c1") is None
    assert len(cache) == 0


def test_a_revoked_row_from_the_loader_removes_the_entry(
        cache: BlocklistCache, store: FakeStore, clocks: Clocks) -> None:
    later = T0 + timedelta(seconds=2)
    store.batches = [[entry("c1"), entry("c2")], [entry("c1", updated=later, revoked=later)]]
    cache.refresh()
    clocks.advance(2)
    assert cache.refresh() == 1
    assert cache.hit("card", "c1") is None
    assert cache.hit("card", "c2") == entry("c2")
    assert len(cache) == 1


def test_add_local_is_active_at_once_without_a_refresh(
        cache: BlocklistCache, store: FakeStore, clocks: Clocks) -> None:
    cache.add_local([NewEntry("device", "d1", "ring", "cypher", 0.8, {"ring": 7}, None),
                     NewEntry("ip", "10.0.0.1", "burst", "rule", 0.6, {}, 60)])
    assert store.calls == []
    hit = cache.hit("device", "d1")
    assert hit is not None
    assert (hit.reason, hit.source, hit.score, hit.evidence, hit.expires_at) == (
        "ring", "cypher", 0.8, {"ring": 7}, None)
    ip = cache.hit("ip", "10.0.0.1")
    assert ip is not None and ip.expires_at == T0 + timedelta(seconds=60)
    clocks.advance(60)
    assert cache.hit("ip", "10.0.0.1") is None
    assert cache.hit("device", "d1") is not None
    assert len(cache) == 1


def test_add_local_merges_like_the_store(cache: BlocklistCache, clocks: Clocks) -> None:
    cache.add_local([NewEntry("card", "c1", "first", "rule", 0.9, {}, 60)])
    cache.add_local([NewEntry("card", "c1", "second", "gnn", 0.5, {}, 600)])
    merged = cache.hit("card", "c1")
    assert merged is not None
    assert (merged.reason, merged.source, merged.score, merged.expires_at) == (
        "first", "rule", 0.9, T0 + timedelta(seconds=600))
    cache.add_local([NewEntry("card", "c1", "third", "label", 0.95, {}, None)])
    merged = cache.hit("card", "c1")
    assert merged is not None
    assert (merged.reason, merged.score, merged.expires_at) == ("third", 0.95, None)


def test_a_revoked_row_wins_over_an_automatic_local_add_not_over_a_persons(
        cache: BlocklistCache, store: FakeStore, clocks: Clocks) -> None:
    # A person revoked the card before this process flagged it again (a rule): the
    # revocation wins (the store refuses the rule's upsert too).
    revoked = T0 - timedelta(seconds=3)
    store.batches = [[entry("c1", updated=revoked, revoked=revoked)]]
    cache.add_local([NewEntry("card", "c1", "again", "rule", 0.9, {}, None)])
    cache.refresh()
    assert cache.hit("card", "c1") is None and cache.revoked("card", "c1")
    # A person lists it again; the loader re-reads the older revoked row (watermark
    # margin) before the new upsert has committed: the person's listing stays.
    cache.add_local([NewEntry("card", "c1", "confirmed", "manual", 1.0, {}, None)])
    clocks.advance(1)
    store.batches = [[entry("c1", updated=revoked, revoked=revoked)]]
    cache.refresh()
    assert cache.hit("card", "c1") is not None
    # A revoke after the local add wins.
    clocks.advance(1)
    store.batches = [[entry("c1", updated=clocks.wall, revoked=clocks.wall)]]
    cache.refresh()
    assert cache.hit("card", "c1") is None


def test_a_re_read_row_is_harmless(cache: BlocklistCache, store: FakeStore,
                                   clocks: Clocks) -> None:
    row = entry("c1")
    store.batches = [[row], [row], [row]]
    for _ in range(3):
        cache.refresh()
        clocks.advance(1)
    assert len(cache) == 1
    assert cache.hit("card", "c1") == row


def test_collapse_keeps_the_highest_score_and_the_longest_ttl() -> None:
    a = NewEntry("card", "c1", "a", "rule", 0.5, {"n": 1}, 60)
    b = NewEntry("card", "c1", "b", "gnn", 0.7, {"n": 2}, 30)
    c = NewEntry("user", "u1", "c", "rule", 0.1, {}, 30)
    d = NewEntry("user", "u1", "d", "rule", 0.1, {}, None)
    assert collapse([a, b, c, d]) == [dataclasses.replace(b, ttl_seconds=60),
                                      dataclasses.replace(c, ttl_seconds=None)]


@pytest.mark.parametrize(("field", "value"), [
    ("entity_type", "phone"), ("source", "oracle"), ("ttl_seconds", 0)])
def test_new_entries_are_validated(field: str, value: object) -> None:
    fields: dict[str, object] = {"entity_type": "card", "entity_id": "c1", "reason": "r",
                                 "source": "rule", "score": 1.0, "evidence": {},
                                 "ttl_seconds": None, field: value}
    with pytest.raises(ValueError, match=field):
        NewEntry(**fields)  # type: ignore[arg-type]


def test_local_entries_merge_to_the_one_that_counts_earliest_in_any_order() -> None:
    flag = NewEntry("card", "c1", "velocity", "rule", 0.8, {"since_ms": 100}, 600)
    label = NewEntry("card", "c1", "confirmed_fraud", "label", 1.0, {"since_ms": 500}, 600)
    seen = []
    for order in ((flag, label), (label, flag)):
        cache = BlocklistCache(lambda _w: ([], None))
        for entry in order:
            cache.add_local([entry])
        hit = cache.hit("card", "c1")
        assert hit is not None
        seen.append((hit.reason, hit.evidence, hit.score))
    assert seen == [("velocity", {"since_ms": 100}, 1.0)] * 2
    assert collapse([label, flag]) == [dataclasses.replace(flag, score=1.0)]


def test_a_manual_revocation_wins_over_automatic_sources(
        cache: BlocklistCache, store: FakeStore, clocks: Clocks) -> None:
    store.batches.append([entry("c1", revoked=T0)])  # a person revoked it
    cache.refresh(force=True)
    assert cache.revoked("card", "c1") and cache.hit("card", "c1") is None
    cache.add_local([NewEntry("card", "c1", "fraud_ring", "cypher", 0.9, {}),
                     NewEntry("card", "c2", "velocity", "rule", 0.8, {})])
    assert cache.hit("card", "c1") is None  # the ring sweep does not undo it
    assert cache.hit("card", "c2") is not None
    cache.add_local([NewEntry("card", "c1", "listed again", "manual", 1.0, {})])
    assert cache.hit("card", "c1") is not None and not cache.revoked("card", "c1")
    clocks.advance(2)
    store.batches.append([entry("c3", revoked=T0), entry("c3", updated=T0 + timedelta(1))])
    cache.refresh()
    assert not cache.revoked("card", "c3")  # listed again (by a person) since
