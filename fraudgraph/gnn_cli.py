"""`fraudgraph gnn train | evaluate | score | models | schedule`: the graph model.

torch is imported only inside the commands that need it (through ``fraudgraph.gnn_service``),
so the rest of the CLI, `gnn models` included, starts without it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fraudgraph import connect
from fraudgraph.errors import FraudgraphError
from fraudgraph.stream.loop import stop_on_signals
from fraudgraph.ui import (
    DURATION,
    FORMAT,
    Column,
    EventTime,
    emit,
    env_epilog,
    err,
    out,
    settings_from,
    table,
)

GNN_ENV = env_epilog("FRAUDGRAPH_NEO4J", "FRAUDGRAPH_POSTGRES", "FRAUDGRAPH_DATA")


def _pipeline() -> Any:
    try:
        from fraudgraph import gnn_service as pipeline
    except ImportError as exc:
        raise FraudgraphError(f"the GNN needs torch and torch_geometric ({exc}); install them "
                              "with `pip install -e '.[gnn]'` (scripts/bootstrap.sh does)"
                              ) from None
    return pipeline


@contextmanager
def _stages() -> Iterator[Callable[[str, int, int | None], None]]:
    """One progress bar per stage (export, train gnn, train baseline, write scores)."""
    with Progress(TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err) as bar:
        tasks: dict[str, Any] = {}

        def advance(stage: str, n: int, total: int | None) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.advance(tasks[stage], n)
        yield advance


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _quality_rows(metrics: dict[str, Any]) -> list[list[str]]:
    """One row per target type, all, and the held-out part of all."""
    rows = []
    for target in ("Card", "User", "Device", "all", "held_out"):
        g, b = metrics["gnn"][target], metrics["baseline"][target]
        rows.append([target.lower().replace("_", " "), f"{g['positives']:,} / {g['entities']:,}",
                     _fmt(g["ap"]), _fmt(b["ap"]), _fmt(g["auc"]), _fmt(b["auc"])])
    return rows


QUALITY_COLUMNS = ["entities", "fraud / validation", "GNN AP", "baseline AP", "GNN AUC",
                   "baseline AUC"]


@click.group(epilog=GNN_ENV)
def gnn() -> None:
    """The graph model: train, evaluate, promote and score entities.

    \b
    fraudgraph gnn train                 # export, train GNN + baseline, promote if better
    fraudgraph gnn score                 # champion scores onto nodes, blocklist, alerts
    fraudgraph gnn models                # the registry
    fraudgraph gnn schedule --every 6h   # retrain and score on a schedule
    """


@gnn.command(epilog=GNN_ENV)
@click.option("--epochs", type=click.IntRange(min=1), default=150, show_default=True)
@click.option("--hidden", type=click.IntRange(min=1), default=32, show_default=True,
              help="Hidden units per layer.")
@click.option("--layers", type=click.IntRange(min=1, max=4), default=2, show_default=True,
              help="Message-passing layers (hops).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=0.01,
              show_default=True, help="Learning rate (Adam).")
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--cut", "cut_quantile", type=click.FloatRange(0.05, 0.95), default=0.7,
              show_default=True,
              help="Share of fraud labels (by report time) known to training; every "
                   "entity not known by then validates, the later-reported frauds as its "
                   "positives.")
@click.option("--no-promote", is_flag=True, help="Register the model but never promote it.")
@click.pass_context
def train(ctx: click.Context, epochs: int, hidden: int, layers: int, lr: float, seed: int,
          cut_quantile: float, no_promote: bool) -> None:
    """Export the graph, train the GNN and the logistic-regression baseline on the same
    features, and promote the GNN if it beats the champion on the validation entities.

    Measured as production uses it: trained with the fraud labels reported by the
    cut-off, validated on every entity not known as fraud by then (no sampling: the
    real prevalence), whose positives are the frauds reported later.  "held out" is
    the part of the validation entities no model trained on."""
    _train(ctx, epochs=epochs, hidden=hidden, layers=layers, lr=lr, seed=seed,
           cut_quantile=cut_quantile, promote=not no_promote)


def _train(ctx: click.Context, promote: bool = True, cut_quantile: float = 0.7,
           **config: Any) -> Any:
    pipeline = _pipeline()
    from gnn.model import ModelConfig
    settings = settings_from(ctx)
    try:
        with _stages() as advance:
            result = pipeline.train(settings, ModelConfig(**config), cut_quantile, promote,
                                    advance)
    except (ValueError, LookupError) as exc:
        raise FraudgraphError(str(exc)) from None
    except pipeline.TrainingLocked as exc:
        raise FraudgraphError(f"{exc}; wait for it or stop it") from None
    cut = datetime.fromtimestamp(result.data["cut_ms"] / 1000, UTC).strftime("%Y-%m-%d %H:%M")
    out.print(table(f"model {result.version}: validation (fraud reported after {cut} UTC)",
                    QUALITY_COLUMNS, _quality_rows(result.metrics)))
    seconds = result.seconds
    out.print(f"{result.data['entities']:,} entities, {result.data['relationships']:,} "
              f"relationships; export {seconds['export']:.1f}s, train {seconds['train']:.1f}s, "
              f"total {seconds['total']:.1f}s; loss {result.losses[0]:.3f} → "
              f"{result.losses[-1]:.3f}")
    champion = ("no champion yet" if result.champion_metric is None
                else f"champion AP {result.champion_metric:.3f}")
    verdict = "promoted" if result.promoted else "kept, not promoted"
    out.print(f"[bold]{verdict}[/bold]: AP {result.metric:.3f} ({champion})")
    return result


@gnn.command(epilog=GNN_ENV)
@click.option("--version", help="A registered model (default: the champion).")
@click.pass_context
def evaluate(ctx: click.Context, version: str | None) -> None:
    """Measure a model and its baseline on the current graph's validation entities."""
    pipeline = _pipeline()
    try:
        name, metrics = pipeline.evaluate(settings_from(ctx), version)
    except (ValueError, LookupError) as exc:
        raise FraudgraphError(str(exc)) from None
    out.print(table(f"model {name} on the current graph", QUALITY_COLUMNS,
                    _quality_rows(metrics)))


@gnn.command(epilog=GNN_ENV)
@click.option("--version", help="A registered model (default: the champion).")
@click.option("--flag-threshold", type=click.FloatRange(0, 1), default=0.95, show_default=True,
              help="Entities scoring at least this go to the blocklist and fraud-alerts.")
@click.option("--ttl", type=DURATION, default="7d", show_default=True,
              help="Time to live of the blocklist entries.")
@click.option("--labels-until", type=EventTime("cut"), metavar="TIME|cut",
              help="Backtest: the model sees only the fraud reported at or before this "
                   "time (ISO-8601 with zone), or by its training cut-off (cut) "
                   "[default: all confirmed fraud].")
@click.option("--no-flag", is_flag=True,
              help="Write the scores only: no blocklist entries, marks or alerts.")
@click.pass_context
def score(ctx: click.Context, version: str | None, flag_threshold: float, ttl: int,
          labels_until: int | str | None, no_flag: bool) -> None:
    """Score every card, user and device: risk_score / risk_model on the nodes (the
    detector daemon reads them), high scores to the blocklist (source gnn) and alerts.

    The model reads the confirmed fraud around each entity (its label input):
    entities next to known fraud score higher.  Confirmed fraud itself scores 1 and
    is not flagged: the label feedback has acted on it (blocklisted the card; a user
    or device with confirmed fraud may be the victim).

    risk_scored_ms on the nodes is the event time the scores are as of: the newest
    event in the graph, or the newest label shown (the --labels-until time) if later;
    the daemon uses a score only for transactions at or after it."""
    _score(ctx, version, flag_threshold, ttl, labels_until, not no_flag)


def _score(ctx: click.Context, version: str | None = None, flag_threshold: float = 0.95,
           ttl: int = 7 * 86_400_000, labels_until: int | str | None = None,
           flag: bool = True) -> Any:
    pipeline = _pipeline()
    try:
        with _stages() as advance:
            result = pipeline.score(settings_from(ctx), version, flag_threshold,
                                    max(1, ttl // 1000), advance, labels_until, flag)
    except (ValueError, LookupError) as exc:
        raise FraudgraphError(str(exc)) from None
    out.print(table(f"scored with {result.version}", ["entities", "scored", "flagged"],
                    [[t, f"{n:,}", f"{result.flagged[t]:,}"] for t, n in result.scored.items()]))
    s = result.seconds
    as_of = datetime.fromtimestamp(result.as_of_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
    out.print(f"scores as of {as_of} UTC (event time); "
              f"export {s['export']:.1f}s, inference {s['inference']:.1f}s, "
              f"write {s['write']:.1f}s, total {s['total']:.1f}s")
    return result


MODEL_COLUMNS = [
    Column("version"),
    Column("trained_at", lambda at: at.astimezone(UTC).strftime("%Y-%m-%d %H:%M"), "right",
           "trained (UTC)"),
    Column("entities", lambda n: f"{n:,}", "right"),
    Column("ap", _fmt, "right", "AP"),
    Column("baseline_ap", _fmt, "right", "baseline AP"),
    Column("train_seconds", _fmt, "right", "train s"),
    Column("champion", lambda promoted: "*" if promoted else "", "right"),
]


@gnn.command(epilog=GNN_ENV)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@FORMAT
@click.pass_context
def models(ctx: click.Context, limit: int, fmt: str) -> None:
    """The model registry, newest first (* marks the champion)."""
    from storage import models as registry
    rows = connect.registered_models(settings_from(ctx), registry.GNN, limit)
    if not rows and fmt == "table":
        out.print("no models yet: `fraudgraph gnn train` trains one")
        return
    emit([[r.version, r.trained_at, r.entities, r.metric,
           r.metrics.get("baseline", {}).get("all", {}).get("ap"),
           r.metrics.get("seconds", {}).get("train"), r.promoted] for r in rows],
         MODEL_COLUMNS, fmt, "GNN models")


@gnn.command(epilog=GNN_ENV)
@click.option("--every", type=DURATION, required=True, help="Time between runs (e.g. 6h).")
@click.option("--once", is_flag=True, help="One retrain and score, then exit (for cron).")
@click.option("--flag-threshold", type=click.FloatRange(0, 1), default=0.95, show_default=True)
@click.pass_context
def schedule(ctx: click.Context, every: int, once: bool, flag_threshold: float) -> None:
    """Retrain (promoting only a better model) and score with the champion, every
    DURATION, until Ctrl-C / SIGTERM.  A run that finds another training under way
    skips its turn (a PostgreSQL lock: two schedulers never train at once)."""
    stop = stop_on_signals()
    while True:
        started = time.monotonic()
        try:
            _train(ctx)
        except FraudgraphError as exc:
            err.print(f"[yellow]training skipped:[/yellow] {exc}")
        try:
            _score(ctx, flag_threshold=flag_threshold)
        except FraudgraphError as exc:
            err.print(f"[yellow]scoring skipped:[/yellow] {exc}")
        out.print(f"retrain + score took {time.monotonic() - started:.1f}s")
        if once or stop.wait(max(0.0, every / 1000 - (time.monotonic() - started))):
            return
