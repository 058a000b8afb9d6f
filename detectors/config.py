"""Detector configuration: rules, weights, thresholds, windows, read once from TOML.

``load(name_or_path)`` accepts a preset name (``default``, ``legacy``: files in
``detectors/presets/``) or a path to a TOML file.  A file may name a ``preset``
to start from and override single values.  Everything is validated at load
time: an unknown key, a wrong type or a value out of range is one
:class:`ConfigError` naming the key and what is expected.

Every duration is held in milliseconds, as an int in a field named ``*_ms``.  In
TOML such a field is a duration string under its name without the suffix
(``window = "10m"`` → ``window_ms``), except the few in :data:`SECONDS_KEYS`, which
keep the key and the plain number of seconds they were first written with.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

from detectors.entities import ENTITY_TYPES

PRESETS_DIR = Path(__file__).parent / "presets"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)?")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, None: 1000}
#: ``*_ms`` fields written in TOML as a number of seconds, under this key
SECONDS_KEYS = {"refresh_ms": "refresh_seconds"}


class ConfigError(ValueError):
    """The detector configuration is invalid; the message names the key."""


def parse_duration_ms(text: str) -> int:
    """``"90s"`` → 90000; a bare number means seconds.  Raises ValueError."""
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration (examples: 500ms, 90s, 10m, 2h, 30d)")
    return round(float(match.group(1)) * _UNIT_MS[match.group(2)])


@dataclass(frozen=True)
class DecisionConfig:
    review_threshold: float = 0.5
    block_threshold: float = 0.8


@dataclass(frozen=True)
class StateConfig:
    max_cards: int = 500_000
    max_users: int = 500_000
    max_devices: int = 200_000
    max_ips: int = 200_000
    history_per_card: int = 32


@dataclass(frozen=True)
class BlocklistConfig:
    ttl_ms: int = 30 * 86_400_000
    refresh_ms: int = 1_000  # between reloads of the in-process cache from PostgreSQL
    flag_on_block: tuple[str, ...] = ()


@dataclass(frozen=True)
class BlocklistHitRule:
    enabled: bool = True
    weights: tuple[tuple[str, float], ...] = (("card", 1.0), ("user", 1.0), ("device", 1.0),
                                              ("ip", 0.9), ("site", 0.3))


@dataclass(frozen=True)
class VelocityRule:
    enabled: bool = True
    window_ms: int = 600_000
    min_transactions: int = 3
    require_different_amount: bool = False
    weight: float = 0.55
    flag: tuple[str, ...] = ()


@dataclass(frozen=True)
class AmountSpikeRule:
    enabled: bool = True
    factor: float = 2.5
    min_history: int = 3
    weight: float = 0.4
    flag: tuple[str, ...] = ()


@dataclass(frozen=True)
class CountryHopRule:
    enabled: bool = True
    window_ms: int = 7_200_000
    weight: float = 0.45
    flag: tuple[str, ...] = ()


@dataclass(frozen=True)
class UnfamiliarCountryRule:
    enabled: bool = True
    min_history: int = 2
    weight: float = 0.5
    flag: tuple[str, ...] = ()


@dataclass(frozen=True)
class CardTestingRule:
    enabled: bool = True
    window_ms: int = 600_000
    small_amount_usd: float = 5.0
    min_small: int = 3
    min_sites: int = 2
    weight: float = 0.9
    flag: tuple[str, ...] = ()


@dataclass(frozen=True)
class NewDeviceRule:
    enabled: bool = True
    high_amount_usd: float = 300.0
    min_history: int = 0
    weight: float = 0.6
    flag: tuple[str, ...] = ()


@dataclass(frozen=True)
class SharedDeviceRule:
    enabled: bool = True
    max_cards: int = 5
    max_users: int = 2
    weight: float = 0.6
    flag: tuple[str, ...] = ("device",)


@dataclass(frozen=True)
class SharedIpRule:
    enabled: bool = True
    max_users: int = 2
    weight: float = 0.5
    flag: tuple[str, ...] = ()


@dataclass(frozen=True)
class RulesConfig:
    blocklist_hit: BlocklistHitRule = BlocklistHitRule()
    velocity: VelocityRule = VelocityRule()
    amount_spike: AmountSpikeRule = AmountSpikeRule()
    country_hop: CountryHopRule = CountryHopRule()
    unfamiliar_country: UnfamiliarCountryRule = UnfamiliarCountryRule()
    card_testing: CardTestingRule = CardTestingRule()
    new_device_high_amount: NewDeviceRule = NewDeviceRule()
    shared_device: SharedDeviceRule = SharedDeviceRule()
    shared_ip: SharedIpRule = SharedIpRule()


@dataclass(frozen=True)
class GraphConfig:
    enabled: bool = True
    as_of_lag_ms: int = 2_000
    shared_device_cards: int = 5
    shared_device_users: int = 2
    shared_device_weight: float = 0.6
    shared_card_weight: float = 0.7
    ring_weight: float = 0.85
    compromised_site_window_ms: int = 14 * 86_400_000
    compromised_site_min_frauds: int = 2
    compromised_site_weight: float = 0.15
    near_fraud_weight: float = 0.35
    gnn_enabled: bool = True
    gnn_threshold: float = 0.5
    gnn_weight: float = 0.4


@dataclass(frozen=True)
class RingsConfig:
    sweep_every_ms: int = 30_000
    min_users: int = 3
    link_through: tuple[str, ...] = ("card",)
    max_device_users: int = 10
    flag: tuple[str, ...] = ("user",)


@dataclass(frozen=True)
class LabelsConfig:
    """What a confirmed fraud label does besides raising the risk features of its card,
    user, site and device (always): blocklist the card, for ``ttl_ms``.  Off by
    default: where the issuer does not reissue a card after fraud, the card id stays
    and every later genuine payment on it would be blocked."""

    blocklist_card: bool = False
    ttl_ms: int = 30 * 86_400_000


@dataclass(frozen=True)
class ModelConfig:
    """The learned model (``fraudgraph model train``): once one is promoted, its
    probability is the score of every transaction that no certain reason decides."""

    #: off: the rules decide and no feature vectors are computed or logged (nothing to
    #: train a model on later; the legacy preset)
    enabled: bool = True
    #: reasons that decide alone, whatever the model says: a blocklisted card (a person
    #: or a label listed it) or user (a fraud ring's member); a device or IP the rules
    #: flagged themselves is a guess, a feature for the model
    certain: tuple[str, ...] = ("blocklist_card", "blocklist_user")
    #: fixed probability thresholds; 0: the promoted model's own (from the daily
    #: review capacity it was trained for, ``fraudgraph model train --capacity``)
    review_threshold: float = 0.0
    block_threshold: float = 0.0
    reload_ms: int = 60_000  # between looks for a newly promoted model
    top_reasons: int = 3  # contributing features listed per review/block


@dataclass(frozen=True)
class DetectorConfig:
    name: str = "default"
    decision: DecisionConfig = DecisionConfig()
    state: StateConfig = StateConfig()
    blocklist: BlocklistConfig = BlocklistConfig()
    rules: RulesConfig = RulesConfig()
    graph: GraphConfig = GraphConfig()
    rings: RingsConfig = RingsConfig()
    labels: LabelsConfig = LabelsConfig()
    model: ModelConfig = ModelConfig()


def presets() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.toml"))


def load(name_or_path: str | Path = "default") -> DetectorConfig:
    """Read a preset or a TOML file into a validated :class:`DetectorConfig`."""
    raw, name = _read_chain(str(name_or_path), seen=())
    return build(raw, name)


def build(raw: dict[str, Any], name: str = "custom") -> DetectorConfig:
    """Validate a parsed TOML document (without ``preset``) into a config."""
    config = _section(DetectorConfig, {k: v for k, v in raw.items() if k != "preset"}, "")
    config = dataclasses.replace(config, name=name)
    if not 0 < config.decision.review_threshold <= config.decision.block_threshold <= 1:
        raise ConfigError("decision: need 0 < review_threshold <= block_threshold <= 1")
    return config


def _read_chain(ref: str, seen: tuple[str, ...]) -> tuple[dict[str, Any], str]:
    path = Path(ref) if ref.endswith(".toml") or "/" in ref else PRESETS_DIR / f"{ref}.toml"
    if not path.is_file():
        raise ConfigError(f"no detector config {ref!r}: give a .toml path or one of the "
                          f"presets {', '.join(presets())}")
    if str(path) in seen:
        raise ConfigError(f"{path}: presets refer to each other in a loop")
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    base_name = doc.get("preset")
    if base_name is None:
        return doc, path.stem
    if not isinstance(base_name, str):
        raise ConfigError(f"{path}: preset must be a string")
    base, _ = _read_chain(base_name, (*seen, str(path)))
    return _merge(base, doc), path.stem


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if key == "preset":
            continue
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "weights":
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


T = TypeVar("T")


def _section(cls: type[T], raw: Any, where: str) -> T:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where or 'config'}: expected a table")
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    by_key = {_toml_key(n): n for n in known}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = by_key.get(key)
        if name is None:
            raise ConfigError(f"{where}{key}: unknown setting (known: {', '.join(sorted(by_key))})")
        default = getattr(cls(), name)
        if name in SECONDS_KEYS:
            values[name] = _seconds(value, f"{where}{key}")
        elif name.endswith("_ms"):
            values[name] = _duration(value, f"{where}{key}")
        else:
            values[name] = _value(default, value, f"{where}{key}")
    return cls(**values)


def _toml_key(field_name: str) -> str:
    return SECONDS_KEYS.get(field_name) or field_name.removesuffix("_ms")


def _value(default: Any, value: Any, where: str) -> Any:
    if hasattr(default, "__dataclass_fields__"):
        return _section(type(default), value, f"{where}.")
    if where.endswith("weights"):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table of entity type = weight")
        for entity, weight in value.items():
            if entity not in ENTITY_TYPES:
                raise ConfigError(f"{where}.{entity}: not an entity type "
                                  f"({', '.join(ENTITY_TYPES)})")
            _weight(weight, f"{where}.{entity}")
        return tuple((k, float(v)) for k, v in value.items())
    if where.endswith("model.certain"):
        if not isinstance(value, list) or any(not isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: expected a list of reason codes")
        return tuple(value)
    if where.endswith("link_through"):
        if not isinstance(value, list) or any(v not in ("card", "device") for v in value):
            raise ConfigError(f"{where}: expected a list of \"card\" and/or \"device\"")
        return tuple(value)
    if isinstance(default, tuple):
        if not isinstance(value, list) or any(v not in ENTITY_TYPES for v in value):
            raise ConfigError(f"{where}: expected a list of entity types "
                              f"({', '.join(ENTITY_TYPES)})")
        return tuple(value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false")
        return value
    if isinstance(default, int):
        least = 0 if where.endswith("min_history") else 1  # no history needed: 0
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ConfigError(f"{where}: expected a whole number >= {least}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"{where}: expected a number >= 0")
        if "weight" in where or "threshold" in where:
            _weight(value, where)
        return float(value)
    raise ConfigError(f"{where}: unsupported setting")  # pragma: no cover - schema bug


def _duration(value: Any, where: str) -> int:
    """A ``*_ms`` setting, written in TOML as a duration string without the suffix."""
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a duration string such as \"10m\"")
    try:
        return parse_duration_ms(value)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _seconds(value: Any, where: str) -> int:
    """A ``*_ms`` setting of :data:`SECONDS_KEYS`, written in TOML as a number of
    seconds (``1.0``, ``2``), in whole milliseconds."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"{where}: expected a number >= 0")
    if not math.isfinite(value):
        raise ConfigError(f"{where}: expected a finite number of seconds")
    return round(value * 1000)


def _weight(value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigError(f"{where}: expected a number between 0 and 1")
