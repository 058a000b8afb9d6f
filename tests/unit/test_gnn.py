"""The GNN on small synthetic graphs (tens of nodes): features, split, shapes,
determinism, save/load, and that no validation label reaches training: labels are
known from their report time, validation holds every entity not known at the cut,
the standardiser sees training entities only."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from gnn import dataset
from gnn.dataset import RELATIONS, TARGETS, GraphData
from gnn.evaluation import quality
from gnn.model import (
    LABEL_INPUT,
    Artifact,
    ModelConfig,
    Standardiser,
    hetero_data,
    label_view,
    schema,
)
from gnn.scoring import as_of_ms, predict, predict_raw
from gnn.training import fit_models

DAY = dataset.DAY_MS
CONFIG = ModelConfig(hidden=8, epochs=15, threads=1)


def synthetic(seed: int = 0, n: int = 24) -> GraphData:
    """Users holding cards, paying at sites, on devices; a quarter of the devices are
    shared by many cards and every card on them is fraud (found at various times,
    reported 1 to 5 days later)."""
    rng = np.random.default_rng(seed)
    counts = {"User": n, "Card": n + 6, "Site": 8, "Device": n // 2, "IP": n // 2}
    ids = {t: [f"{t.lower()}{i:03d}" for i in range(k)] for t, k in counts.items()}
    shared = set(range(counts["Device"] // 4))
    aggregates = {}
    card_device = rng.integers(0, counts["Device"], counts["Card"])
    for rel in RELATIONS:
        if rel == ("Card", "USED_ON", "Device"):
            src, dst = np.arange(counts["Card"]), card_device
        elif rel == ("User", "HOLDS", "Card"):
            src, dst = np.arange(counts["Card"]) % counts["User"], np.arange(counts["Card"])
        else:
            m = counts[rel[0]] * 2
            src, dst = rng.integers(0, counts[rel[0]], m), rng.integers(0, counts[rel[2]], m)
        k = len(src)
        tx = rng.integers(1, 6, k)
        first = rng.integers(0, 30, k) * DAY
        aggregates[rel] = np.stack([src, dst, tx, tx * rng.integers(500, 9000, k), first,
                                    first + rng.integers(0, 5, k) * DAY]).astype(np.float64)
    fraud = {t: np.full(counts[t], -1, dtype=np.int64) for t in TARGETS}
    reported = {t: np.full(counts[t], -1, dtype=np.int64) for t in TARGETS}
    for card, device in enumerate(card_device):
        if device in shared:
            fraud["Card"][card] = int(rng.integers(1, 40)) * DAY
            reported["Card"][card] = fraud["Card"][card] + int(rng.integers(1, 6)) * DAY
            user = card % counts["User"]
            for t, i in (("Device", device), ("User", user)):  # latest fraud, first report
                fraud[t][i] = max(fraud[t][i], fraud["Card"][card])
                reported[t][i] = (reported["Card"][card] if reported[t][i] < 0
                                  else min(reported[t][i], reported["Card"][card]))
    return dataset.build(ids, aggregates, fraud, reported)


def test_features_are_computed_from_the_aggregates_by_hand() -> None:
    ids = {"User": ["u1"], "Card": ["c1", "c2"], "Site": ["s1"], "Device": ["d1"], "IP": []}
    empty = np.zeros((6, 0))
    aggregates = {rel: empty for rel in RELATIONS}
    # c1 and c2 both on d1: 3 and 1 transactions, 300 and 100 minor units, days 0-2 and 5-5
    aggregates[("Card", "USED_ON", "Device")] = np.array(
        [[0, 1], [0, 0], [3, 1], [300, 100], [0, 5 * DAY], [2 * DAY, 5 * DAY]], dtype=float)
    data = dataset.build(ids, aggregates, {})
    device = dict(zip(data.feature_names["Device"], data.x["Device"][0], strict=True))
    assert device["USED_ON_in_degree"] == pytest.approx(np.log1p(2))
    assert device["USED_ON_in_transactions"] == pytest.approx(np.log1p(4))
    assert device["USED_ON_in_amount_per_tx"] == pytest.approx(np.log1p(100))
    assert device["USED_ON_in_max_edge_tx"] == pytest.approx(np.log1p(3))
    assert device["USED_ON_in_span_days"] == pytest.approx(5)
    assert device["age_days"] == pytest.approx(5) and device["days_since_active"] == 0
    card = dict(zip(data.feature_names["Card"], data.x["Card"][0], strict=True))
    assert card["USED_ON_out_degree"] == pytest.approx(np.log1p(1))
    assert card["days_since_active"] == pytest.approx(3)
    assert data.x["Site"].shape == (1, len(data.feature_names["Site"]))
    assert not any("fraud" in name for names in data.feature_names.values() for name in names)


def test_split_is_by_report_time() -> None:
    data = synthetic()
    split = dataset.split(data, cut_quantile=0.6)
    for t in TARGETS:
        reported, train, valid = data.reported_ms[t], split.train[t], split.valid[t]
        late, never = reported > split.cut_ms, reported < 0
        known = ~late & ~never
        assert np.array_equal(split.known[t], known)
        assert (known <= train).all() and not (known & valid).any()  # trained, not measured
        assert (late <= valid).all() and not (late & train).any()  # measured, never trained
        # never-labelled: all measured, trained unless held out
        assert (never <= valid).all()
        assert np.array_equal(never & train, never & ~split.held_out[t])
    assert sum(int((split.y[t] * split.valid[t]).sum()) for t in TARGETS) > 0


def test_validation_holds_every_entity_not_known_at_the_cut_at_the_real_prevalence() -> None:
    data = synthetic(n=40)
    split = dataset.split(data)
    not_known = sum(int(((r < 0) | (r > split.cut_ms)).sum()) for r in data.reported_ms.values())
    reported_later = sum(int((r > split.cut_ms).sum()) for r in data.reported_ms.values())
    metrics = quality(split, {t: np.zeros(len(data.node_ids[t])) for t in TARGETS})
    measured = metrics["all"]
    assert measured["entities"] == not_known  # no sampling: the full count
    assert measured["positives"] == reported_later
    assert measured["positives"] / measured["entities"] == reported_later / not_known
    assert 0 < metrics["held_out"]["entities"] < not_known  # the never-trained part


def test_known_fraud_counts_from_the_report_time() -> None:
    """A fraud that happened before the cut-off but was reported after it is not known
    at the cut-off: no label input, and a validation positive."""
    data = synthetic()
    t, i = "Card", int(np.flatnonzero(data.fraud_ms["Card"] < 0)[0])
    fraud, reported = data.fraud_ms[t].copy(), data.reported_ms[t].copy()
    fraud[i] = DAY  # the first fraud of all, reported after every other label
    reported[i] = max(int(r.max()) for r in data.reported_ms.values()) + DAY
    data = dataclasses.replace(data, fraud_ms={**data.fraud_ms, t: fraud},
                               reported_ms={**data.reported_ms, t: reported})
    split = dataset.split(data)
    assert data.fraud_ms[t][i] <= split.cut_ms < data.reported_ms[t][i]
    assert not dataset.known_fraud(data, split.cut_ms)[t][i] and not split.known[t][i]
    graph = hetero_data(data, Standardiser.fit(data, split.train), split.known)
    assert graph[t].x[i, -1] == 0  # the known_fraud input at the cut
    assert split.valid[t][i] and split.y[t][i] == 1  # ... and a validation positive
    assert not dataset.known_fraud(data, int(reported[i]) - 1)[t][i]
    assert dataset.known_fraud(data, int(reported[i]))[t][i]
    assert dataset.known_fraud(data)[t][i]  # every confirmed fraud when no time is given


def test_standardiser_is_fit_on_training_entities_only() -> None:
    data = synthetic()
    split = dataset.split(data)
    t = "Card"
    held = np.flatnonzero(split.valid[t] & ~split.train[t])  # validation only
    assert (split.y[t][held] > 0).any() and (split.y[t][held] == 0).any()
    trained = int(np.flatnonzero(split.train[t])[0])
    before = Standardiser.fit(data, split.train)
    x = data.x[t].copy()
    x[held] += 1000.0  # later frauds and held-out entities: no model trains on them
    changed = dataclasses.replace(data, x={**data.x, t: x})
    assert Standardiser.fit(changed, split.train) == before
    x[trained] += 1000.0  # ... while a training entity moves the statistics
    assert Standardiser.fit(dataclasses.replace(data, x={**data.x, t: x}),
                            split.train) != before


def test_scores_are_as_of_the_newest_event_or_label() -> None:
    data = synthetic()
    none = {t: np.zeros(len(data.node_ids[t]), dtype=bool) for t in TARGETS}
    assert as_of_ms(data, none, None) == data.newest_ms
    assert as_of_ms(data, none, data.newest_ms - DAY) == data.newest_ms
    assert as_of_ms(data, none, data.newest_ms + DAY) == data.newest_ms + DAY
    every = dataset.known_fraud(data)
    latest = max(int(r.max()) for r in data.reported_ms.values())
    assert latest > data.newest_ms  # labels reported after the last activity
    assert as_of_ms(data, every, None) == latest


def test_tensor_shapes_and_reverse_relations() -> None:
    data = synthetic()
    split = dataset.split(data)
    model, baseline, standardiser, losses = fit_models(data, split, CONFIG)
    known = dataset.known_fraud(data, split.cut_ms)
    graph = hetero_data(data, standardiser, known)
    for t, ids in data.node_ids.items():
        assert tuple(graph[t].x.shape) == (len(ids), len(schema(data)[t]))
    for t in TARGETS:  # the label input: fraud reported by the cut, in the last column
        assert schema(data)[t][-1] == LABEL_INPUT
        assert np.array_equal(graph[t].x[:, -1].numpy() > 0, known[t])
        assert np.array_equal(known[t], split.known[t])
    assert LABEL_INPUT not in schema(data)["Site"]
    for (src, rel, dst), index in data.edges.items():
        assert tuple(graph[src, rel, dst].edge_index.shape) == (2, index.shape[1])
        assert graph[dst, f"rev_{rel}", src].edge_index.shape == (2, index.shape[1])
    scores = predict_raw(model, data, standardiser, known)
    assert {t: s.shape for t, s in scores.items()} == {t: (len(data.node_ids[t]),)
                                                       for t in TARGETS}
    assert all(((s >= 0) & (s <= 1)).all() for s in scores.values())
    assert len(losses) == CONFIG.epochs and losses[-1] < losses[0]
    assert set(predict_raw(baseline, data, standardiser, known)) == set(TARGETS)


def test_training_is_deterministic_under_a_seed() -> None:
    data = synthetic()
    split = dataset.split(data)
    first = predict_raw(*_model_and_standardiser(data, split, CONFIG))
    again = predict_raw(*_model_and_standardiser(data, split, CONFIG))
    other = predict_raw(*_model_and_standardiser(data, split,
                                                 dataclasses.replace(CONFIG, seed=7)))
    assert all(np.array_equal(first[t], again[t]) for t in TARGETS)
    assert not all(np.array_equal(first[t], other[t]) for t in TARGETS)


def test_save_and_load_give_identical_scores(tmp_path: Path) -> None:
    data = synthetic()
    split = dataset.split(data)
    model, baseline, standardiser, _ = fit_models(data, split, CONFIG)
    known = dataset.known_fraud(data, split.cut_ms)
    metadata = hetero_data(data, standardiser, known).metadata()
    artifact = Artifact("gnn", CONFIG, schema(data), standardiser,
                        (list(metadata[0]), [tuple(r) for r in metadata[1]]))
    artifact.save(model, tmp_path / "m")
    Artifact("baseline", CONFIG, schema(data), standardiser,
             artifact.metadata).save(baseline, tmp_path / "m" / "baseline")
    for folder, trained in ((tmp_path / "m", model), (tmp_path / "m" / "baseline", baseline)):
        loaded, reloaded = Artifact.load(folder)
        assert loaded.config == CONFIG
        expected = predict_raw(trained, data, standardiser, known)
        got = predict(loaded, reloaded, data, known)
        assert all(np.array_equal(expected[t], got[t]) for t in TARGETS)
    renamed = dataclasses.replace(data, feature_names={**data.feature_names,
                                                       "Card": ["x"] * 3})
    with pytest.raises(ValueError, match="Card features differ"):
        predict(loaded, reloaded, renamed, known)


def test_no_validation_label_influences_training() -> None:
    data = synthetic()
    split = dataset.split(data)
    flipped = dataclasses.replace(split, y={t: np.where(split.valid[t], 1 - split.y[t],
                                                        split.y[t]) for t in TARGETS})
    assert any((flipped.y[t] != split.y[t]).any() for t in TARGETS)
    honest = predict_raw(*_model_and_standardiser(data, split, CONFIG))
    leaked = predict_raw(*_model_and_standardiser(data, flipped, CONFIG))
    assert all(np.array_equal(honest[t], leaked[t]) for t in TARGETS)
    # ... while the validation metric does read them
    assert quality(split, honest)["all"] != quality(flipped, honest)["all"]
    # nor does when a later label is reported: only the labels reported by the cut count
    later = dataclasses.replace(data, reported_ms={
        t: np.where(r > split.cut_ms, r + 30 * DAY, r) for t, r in data.reported_ms.items()})
    assert any((later.reported_ms[t] != data.reported_ms[t]).any() for t in TARGETS)
    moved = predict_raw(*_model_and_standardiser(later, split, CONFIG))
    assert all(np.array_equal(honest[t], moved[t]) for t in TARGETS)


def test_known_fraud_reaches_neighbours_through_the_graph_only() -> None:
    """Showing one card's fraud in the label input moves the GNN's score of the
    other cards on its device (two hops), never the baseline's."""
    data = synthetic()
    split = dataset.split(data)
    model, baseline, standardiser, _ = fit_models(data, split, CONFIG)
    used_on = data.edges[("Card", "USED_ON", "Device")]
    device = np.bincount(used_on[1]).argmax()
    cards = used_on[0][used_on[1] == device]
    none = {t: np.zeros(len(data.node_ids[t]), dtype=bool) for t in TARGETS}
    one = {**none, "Card": none["Card"].copy()}
    one["Card"][cards[0]] = True
    others = cards[1:]
    assert len(others)
    gnn_before, gnn_after = (predict_raw(model, data, standardiser, k)["Card"]
                             for k in (none, one))
    assert not np.allclose(gnn_before[others], gnn_after[others])
    base_before, base_after = (predict_raw(baseline, data, standardiser, k)["Card"]
                               for k in (none, one))
    assert np.array_equal(base_before[others], base_after[others])


def _model_and_standardiser(data: GraphData, split: dataset.Split, config: ModelConfig
                            ) -> tuple[object, GraphData, object, dict[str, np.ndarray]]:
    model, _, standardiser, _ = fit_models(data, split, config)
    return model, data, standardiser, dataset.known_fraud(data, split.cut_ms)


def test_training_never_shows_a_hidden_entity_its_own_fraud_through_a_neighbour() -> None:
    """One fraud label marks a card, its user and its device at once.  Whatever inner
    cut-off an epoch draws, an entity whose fraud is hidden (in the loss) has no
    neighbour shown with that same fraud, as at validation time."""
    data = synthetic(n=40)
    split = dataset.split(data)
    times = {t: torch.from_numpy(np.where(split.known[t], data.reported_ms[t], -1))
             for t in TARGETS}
    masks = {t: torch.from_numpy(split.train[t]) for t in TARGETS}
    cuts = sorted({int(v) for tt in times.values() for v in tt if v >= 0})
    assert len(cuts) > 3
    held = 0
    for inner in [-1, *cuts[:-1]]:
        shown, hidden = label_view(times, masks, inner)
        for rel, (src_type, dst_type) in (
                (("User", "HOLDS", "Card"), ("User", "Card")),
                (("Card", "USED_ON", "Device"), ("Card", "Device"))):
            src, dst = data.edges[rel]
            for a, b in zip(src, dst, strict=True):
                for (h_type, h), (s_type, s_) in (((src_type, a), (dst_type, b)),
                                                  ((dst_type, b), (src_type, a))):
                    if hidden[h_type][h] and times[h_type][h] >= 0:
                        held += 1
                        assert not (shown[s_type][s_]
                                    and times[s_type][s_] == times[h_type][h])
        assert all(not (shown[t] & hidden[t]).any() for t in TARGETS)
    assert held  # hidden frauds next to other entities were checked
