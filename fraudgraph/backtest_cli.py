"""`fraudgraph backtest`: replay labelled histories through the engine and compare variants."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from fraudgraph import backtest_protocol as protocol
from fraudgraph.errors import ConfigError
from fraudgraph.ingest_cli import decoder_config
from fraudgraph.settings import require_secret
from fraudgraph.ui import DURATION, env_epilog, out, settings_from, table
from ingest.transaction import DecoderConfig

if TYPE_CHECKING:
    from fraudgraph.backtest import History


def _seeds(text: str) -> tuple[int, ...]:
    named = {"held-out": protocol.HELD_OUT_SEEDS, "tuning": protocol.TUNING_SEEDS}
    if text in named:
        return named[text]
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r}: a comma-separated list of integers, `held-out` "
                                 "or `tuning`", param_hint="--seeds") from None


_OPTIONS = [
    click.option("--seeds", default="held-out", show_default=True,
                 help=f"Generated histories: seeds, `held-out` ({protocol.HELD_OUT_SEEDS}) or "
                      f"`tuning` ({protocol.TUNING_SEEDS}). Tune on tuning seeds only; report "
                      "held-out ones."),
    click.option("-n", "--count", type=click.IntRange(min=1000), default=100_000,
                 show_default=True, help="Transactions per generated history."),
    click.option("--input", "input_path", type=click.Path(exists=True, dir_okay=False,
                                                          path_type=Path),
                 help="Your own history instead: transactions (JSONL or CSV); needs --labels."),
    click.option("--labels", "labels_path", type=click.Path(exists=True, dir_okay=False,
                                                            path_type=Path),
                 help="Labels of --input (JSONL or CSV: transaction_id, label, source, "
                      "reported_at (else --label-delay after the transaction), optional "
                      "scenario)."),
    click.option("--variant", "variants", multiple=True, default=("rules", "model", "legacy"),
                 type=click.Choice(list(protocol.VARIANTS)), show_default=True,
                 help="What decides (repeat): the default rules; the learned model retrained "
                      "every --model-every (its run also gives the model without graph "
                      "features, model-nograph); either with the GNN's scores (rules+gnn: "
                      "trained at the cut; model+gnn: at every retrain); the legacy system's "
                      "three rules."),
    click.option("--without", type=click.Choice(sorted(protocol.OPTIONAL_FIELDS)), multiple=True,
                 help="Generate the histories without this field (repeat): e.g. --without "
                      "device --without ip leaves card, user, site, amount and time."),
    click.option("--label-delay", type=DURATION, default="7d", show_default=True,
                 help="How late labels come: a transaction without a fraud label counts as "
                      "genuine for training once this old; a --labels row without "
                      "reported_at is reported this long after its transaction."),
    click.option("--model-every", type=DURATION, default="7d", show_default=True,
                 help="Event time between retrains of the model inside the replay."),
    click.option("--decisions-out", type=click.Path(dir_okay=False, path_type=Path),
                 help="Also write every decision as CSV (transaction_id,score,decision), one "
                      "file per history and variant: FILE.<history>.<variant>.csv."),
    click.option("--cut", type=click.FloatRange(0.1, 0.9), default=0.6, show_default=True,
                 help="Where the evaluation window starts, as a share of the history (the "
                      "+gnn variant trains the GNN on what was known there)."),
    click.option("-k", type=click.IntRange(min=1), default=100, show_default=True,
                 help="Cards an analyst team checks per day (Card Precision@k)."),
    click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
                 default=Path("reports/backtest"), show_default=True,
                 help="Folder for summary.md, summary.json and each variant's report."),
    click.option("--yes", "--clear-graph", "yes", is_flag=True,
                 help="Empty the graph even when it holds data (a backtest owns the graph "
                      "while it runs; without this it refuses a graph that is not empty)."),
]


def _options(f: Any) -> Any:
    for option in reversed(_OPTIONS):
        f = option(f)
    return f


@click.command(epilog=env_epilog("FRAUDGRAPH_KAFKA_BOOTSTRAP", "FRAUDGRAPH_NEO4J",
                                 "FRAUDGRAPH_POSTGRES"))
@_options
@click.pass_context
def backtest(ctx: click.Context, seeds: str, count: int, input_path: Path | None,
             labels_path: Path | None, variants: tuple[str, ...], without: tuple[str, ...],
             label_delay: int, model_every: int, decisions_out: Path | None, cut: float,
             k: int, out_dir: Path, yes: bool) -> None:
    """Replay labelled histories through the engine, in event time, and evaluate.

    Per history and variant: fresh topics and blocklist schema, an empty graph, the
    transactions and (in report-time order) the labels produced, projected and decided
    side by side with every check as of its transaction's time; the model variant
    stops at every --model-every of event time, trains on what the daemon logged and
    the labels reported by then, and goes on with the champion.  Each variant is
    evaluated on the window from the cut to the end (and on the whole history);
    summary.md has the table.  The graph is emptied once per history and variant.
    """
    from fraudgraph import backtest as bt  # the machinery: not for every command's start

    settings = settings_from(ctx)
    require_secret(settings.neo4j.password, "FRAUDGRAPH_NEO4J_PASSWORD")
    if (input_path is None) != (labels_path is None):
        raise ConfigError("--input and --labels go together: a history of your own needs "
                          "its transactions and its fraud labels")
    if input_path is not None:
        given = [f"--{name}" for name in ("seeds", "count", "without")
                 if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE]
        if given:
            raise ConfigError(f"{', '.join(given)} shape generated histories; with --input "
                              "the history is your file as it is: leave them out")
    if not yes:
        held = bt.graph_size(settings)
        if held:
            raise ConfigError(f"the Neo4j graph holds {held:,} nodes, and a backtest empties "
                              "it: pass --clear-graph if that is what you want (or point "
                              "FRAUDGRAPH_NEO4J_URI at a scratch database)")
    # history replays its own time: no event is "ahead of the clock"
    decoder = dataclasses.replace(decoder_config(settings), max_future_ms=None)
    runner = bt.Backtest(settings, out_dir, decoder, cut, k, report=out.print,
                         label_delay_ms=label_delay, model_every_ms=model_every,
                         decisions_out=decisions_out)
    commit = _commit()  # the code that runs: taken before, not after an hour of replay
    names = ([input_path.stem] if input_path is not None
             else [f"seed {seed}" for seed in _seeds(seeds)])
    outcomes = []
    for name in names:
        history = _history(name, count, without, input_path, labels_path, decoder,
                           out_dir, label_delay)
        for variant in variants:
            outcomes.extend(runner.run(history, protocol.VARIANTS[variant]))
    context = {"histories": ", ".join(names),
               "transactions per history": count if input_path is None else "from --input",
               "window": f"from {cut:.0%} of each history to its end",
               "without": ", ".join(without) or "-",
               "label delay": f"{label_delay / 86_400_000:g} d",
               "model every": f"{model_every / 86_400_000:g} d",
               "configs": ", ".join(f"{v}: {protocol.VARIANTS[v].config}" for v in variants),
               "commit": commit, "k": k}
    _print_summary(bt.write_summary(out_dir, outcomes, context),
                   bt.summary(outcomes, context)[1], k)


def _history(name: str, count: int, without: tuple[str, ...], input_path: Path | None,
             labels_path: Path | None, decoder: DecoderConfig, out_dir: Path,
             label_delay: int) -> History:
    """A generated history (``seed N``) or the user's files."""
    from fraudgraph import backtest as bt

    if input_path is None or labels_path is None:
        return bt.generated(int(name.removeprefix("seed ")), count, out_dir / bt.slug(name),
                            without)
    try:
        return bt.from_files(input_path, labels_path, decoder, out_dir / bt.slug(name),
                             label_delay)
    except ValueError as exc:
        raise ConfigError(f"{exc}: fix the line or leave it out") from None


def _print_summary(written: Path, data: dict[str, Any], k: int) -> None:
    from fraudgraph.backtest import fmt

    keys = ["recall", "flag_precision", "block_precision", "auc", "ap", "card_precision"]
    out.print(table("backtest: mean over the histories, evaluation window (per scenario: "
                    "summary.md)",
                    ["variant", "recall", "P flag", "P block", "AUC-ROC", "AP", f"CP@{k}"],
                    [[variant, *(fmt(figures.get(key)) for key in keys)]
                     for variant, figures in data["mean"].items()]))
    out.print(f"wrote {written} (per history lines, JSON and every report beside it)")


def _commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, check=False, cwd=Path(__file__).resolve().parent)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, check=False,
                           cwd=Path(__file__).resolve().parent)
    commit = done.stdout.strip() or "unknown"
    return commit + (" (with uncommitted changes)" if dirty.stdout.strip() else "")
