"""`fraudgraph model train | evaluate | models | schedule`: the learned per-transaction model."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import click

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

MODEL_ENV = env_epilog("FRAUDGRAPH_KAFKA_BOOTSTRAP", "FRAUDGRAPH_POSTGRES")


@click.group(epilog=MODEL_ENV)
def model() -> None:
    """The learned model: gradient-boosted trees on the feature vectors the daemon
    logged with its decisions (the `training` topic) and the fraud labels it stored.
    Once one is promoted, `fraudgraph run` scores with it (`model.*` in the preset)."""


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


def _train_options(f: Any) -> Any:
    for option in reversed([
        click.option("--as-of", type=EventTime(), default=None,
                     help="Train on the labels reported by this time (ISO-8601 with zone); "
                          "default: the newest logged event time."),
        click.option("--label-delay", type=DURATION, default="7d", show_default=True,
                     help="How long a label may take: a transaction without a fraud label "
                          "counts as genuine once this much older than --as-of."),
        click.option("--features", type=click.Choice(["all", "no-graph"]), default="all",
                     show_default=True, help="Feature set (no-graph: the ablation)."),
        click.option("--capacity", type=click.IntRange(min=1), default=100,
                     show_default=True, help="Cards a day your team can review: sets the "
                                             "review threshold."),
        click.option("--no-promote", is_flag=True, help="Register without promoting."),
    ]):
        f = option(f)
    return f


@model.command(epilog=MODEL_ENV)
@_train_options
@click.pass_context
def train(ctx: click.Context, as_of: int | None, label_delay: int, features: str,
          capacity: int, no_promote: bool) -> None:
    """Train on the settled rows (fraud: a label reported by --as-of; genuine: no label
    and older than --label-delay), validate on the newest 20 % of them, register, and
    promote if it beats the champion on that same window."""
    _train(ctx, as_of, label_delay, features, capacity, not no_promote)


def _train(ctx: click.Context, as_of: int | None = None, label_delay: int = 7 * 86_400_000,
           features: str = "all", capacity: int = 100, promote: bool = True) -> None:
    from fraudgraph import model_service as service
    from learned.training import NotEnoughLabels
    from storage.models import TrainingLocked

    settings = settings_from(ctx)
    store = connect.blocklist(settings)
    try:
        err.print("reading the logged feature vectors and the fraud labels ...")
        logged = service.read_logged(settings)
        request = service.TrainRequest(as_of, label_delay, features, capacity, promote)
        frauds = store.fraud_reports(service.training_time(logged, as_of))
        result = service.train(store, logged, frauds, request, err.print)
    except (NotEnoughLabels, TrainingLocked) as exc:
        raise FraudgraphError(f"{exc}") from None
    finally:
        store.close()
    m = result.metrics
    rows = [["challenger " + result.version, _fmt(m.get("ap")), _fmt(m.get("auc")),
             _fmt(m.get("card_precision")), f"{int(m.get('train_rows', 0)):,}",
             f"{int(m.get('positives', 0)):,}"]]
    if result.champion_metrics is not None:
        c = result.champion_metrics
        rows.append(["champion " + str(result.champion), _fmt(c.get("ap")), _fmt(c.get("auc")),
                     _fmt(c.get("card_precision")), "", ""])
    out.print(table("validation window (newest settled rows)",
                    ["model", "AP", "AUC-ROC", f"CP@{capacity}", "train rows", "frauds"], rows))
    out.print(f"{'promoted' if result.promoted else 'not promoted'}: {result.version} "
              f"(review >= {result.artifact.review:.4f}, block >= {result.artifact.block:.4f})")
    if result.drift:
        out.print("[yellow]drift[/yellow] in the last 7 days against the training window "
                  "(PSI > 0.25): " + ", ".join(f"{n} {v:.2f}" for n, v in result.drift[:10]))


@model.command(epilog=MODEL_ENV)
@click.option("--version", help="The model (default: the champion).")
@click.option("--as-of", type=EventTime(), default=None,
              help="Settle labels as of this time (default: the newest logged event).")
@click.option("--label-delay", type=DURATION, default="7d", show_default=True)
@click.option("--since", type=EventTime(), default=None,
              help="Evaluate the settled rows from this event time (default: the model's "
                   "training as-of time: rows it never saw).")
@click.option("-k", type=click.IntRange(min=1), default=100, show_default=True,
              help="Cards a day (Card Precision@k).")
@FORMAT
@click.pass_context
def evaluate(ctx: click.Context, version: str | None, as_of: int | None, label_delay: int,
             since: int | None, k: int, fmt: str) -> None:
    """A registered model on the settled rows after its training (AP, AUC-ROC, CP@k),
    and each feature's drift (PSI) since then against its training window."""
    from fraudgraph import model_service as service
    from learned.training import NotEnoughLabels

    settings = settings_from(ctx)
    store = connect.blocklist(settings)
    try:
        logged = service.read_logged(settings)
        frauds = store.fraud_reports(service.training_time(logged, as_of))
        found = service.evaluate(store, logged, frauds, version, as_of, label_delay, since, k)
    except (LookupError, NotEnoughLabels) as exc:
        raise FraudgraphError(str(exc)) from None
    finally:
        store.close()
    emit([[name, value] for name, value in found.figures.items()],
         [Column("figure"), Column("value", _fmt, "right")], fmt,
         f"model {found.version} on {found.rows:,} settled rows from {_day(found.since_ms)}")
    emit([[name, value] for name, value in found.psi[:15]],
         [Column("feature"), Column("psi", _fmt, "right", "PSI")], fmt,
         "feature drift since training (PSI; > 0.25 drifted)")


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


MODEL_COLUMNS = [
    Column("version"),
    Column("trained_at", lambda at: at.astimezone(UTC).strftime("%Y-%m-%d %H:%M"), "right",
           "trained (UTC)"),
    Column("as_of", _day, "right", "labels as of"),
    Column("features"),
    Column("rows", lambda n: f"{n:,}", "right"),
    Column("ap", _fmt, "right", "AP"),
    Column("champion_ap", _fmt, "right", "champion AP"),
    Column("champion", lambda promoted: "*" if promoted else "", "right"),
]


@model.command(epilog=MODEL_ENV)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@FORMAT
@click.pass_context
def models(ctx: click.Context, limit: int, fmt: str) -> None:
    """The learned models, newest first (* marks the champion)."""
    from storage import models as registry
    rows = connect.registered_models(settings_from(ctx), registry.RISK, limit)
    if not rows and fmt == "table":
        out.print("no models yet: `fraudgraph model train` trains one")
        return
    emit([[r.version, r.trained_at, r.cut_ms, r.config.get("features", "all"), r.entities,
           r.metric, (r.metrics.get("champion") or {}).get("ap"), r.promoted] for r in rows],
         MODEL_COLUMNS, fmt, "learned models")


@model.command(epilog=MODEL_ENV)
@click.option("--every", type=DURATION, required=True, help="Time between runs (e.g. 1d).")
@click.option("--once", is_flag=True, help="One retrain, then exit (for cron).")
@_train_options
@click.pass_context
def schedule(ctx: click.Context, every: int, once: bool, as_of: int | None, label_delay: int,
             features: str, capacity: int, no_promote: bool) -> None:
    """Retrain every DURATION (promoting only a better model) until Ctrl-C / SIGTERM.  A
    run that finds another training under way skips its turn."""
    if as_of is not None:
        raise click.UsageError("--as-of fixes the training time, so every scheduled run "
                               "would train the same model: leave it out (each run trains "
                               "as of its own time)")
    stop = stop_on_signals()
    while True:
        started = time.monotonic()
        try:
            _train(ctx, as_of, label_delay, features, capacity, not no_promote)
        except FraudgraphError as exc:
            err.print(f"[yellow]training skipped:[/yellow] {exc}")
        if once or stop.wait(max(0.0, every / 1000 - (time.monotonic() - started))):
            return
