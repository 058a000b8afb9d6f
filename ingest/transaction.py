"""The transaction of SPEC §3.1: a frozen, typed value, decoded from Kafka bytes.

Decoding is on the hot path: msgspec checks structure and types in C (well
under a microsecond), then a few Python checks validate values.  Every failure
is a :class:`DecodeError` with a stable ``reason`` code (for the DLQ and the
metrics) and a precise human ``detail``.

Accepted forms, all decoding to the same canonical :class:`Transaction`:

* field aliases of the systems this replaces: ``value``→``amount``,
  ``merchant_id``→``site_id``, ``customer_id``→``user_id``,
  ``merchant_country``→``country``;
* ``timestamp`` as ISO-8601 with a zone (``Z`` or ``±hh:mm``), or epoch
  seconds (number or numeric string);
* ``amount`` as a JSON number or a decimal string; ``country``/``currency`` in
  any case.

Ids are opaque: any printable text of 1-128 characters without surrounding
blanks.  Text that looks like SQL or Cypher is data, stored verbatim (every
query is parameterised); control characters and over-long ids are rejected.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec

from ingest.iso import COUNTRIES, CURRENCY_EXPONENT, PER_USD

MAX_ID_LENGTH = 128
MAX_CATEGORY_LENGTH = 64
#: Event times outside [2000-01-01, 2100-01-01) are rejected as absurd.
MIN_EVENT_MS = 946_684_800_000
MAX_EVENT_MS = 4_102_444_800_000
_NUMERIC = re.compile(r"\d+(\.\d+)?")


class Transaction(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A validated card transaction (canonical field names).

    ``event_ms`` is the event time in epoch milliseconds (UTC); ``amount_minor``
    is the amount in the currency's minor units (cents), so sums are exact.
    """

    transaction_id: str
    event_ms: int
    amount_minor: int
    currency: str
    card_id: str
    user_id: str
    site_id: str
    country: str
    device_id: str | None = None
    ip_address: str | None = None
    merchant_category: str | None = None
    card_present: bool | None = None

    @property
    def amount(self) -> float:
        return self.amount_minor / 10 ** CURRENCY_EXPONENT[self.currency]

    @property
    def timestamp(self) -> str:
        """Event time as ISO-8601 UTC with milliseconds, e.g. ``2026-01-01T10:00:00.123Z``."""
        return iso_from_ms(self.event_ms)


class _Wire(msgspec.Struct):
    """The JSON as it arrives: canonical names and aliases, types checked by msgspec."""

    transaction_id: str
    timestamp: str | int | float
    card_id: str
    amount: float | str | None = None
    value: float | str | None = None
    currency: str | None = None
    user_id: str | None = None
    customer_id: str | None = None
    site_id: str | None = None
    merchant_id: str | None = None
    country: str | None = None
    merchant_country: str | None = None
    device_id: str | None = None
    ip_address: str | None = None
    merchant_category: str | None = None
    card_present: bool | None = None


class _CanonicalWire(msgspec.Struct, omit_defaults=True):
    """SPEC §3.1 field names and forms, for encoding."""

    transaction_id: str
    timestamp: str
    amount: float
    currency: str
    card_id: str
    user_id: str
    site_id: str
    country: str
    device_id: str | None = None
    ip_address: str | None = None
    merchant_category: str | None = None
    card_present: bool | None = None


@dataclass(frozen=True)
class DecodeError(Exception):
    """Why a message was rejected: ``reason`` is a stable code, ``detail`` says what and where."""

    reason: str
    detail: str

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


@dataclass(frozen=True)
class DecoderConfig:
    default_currency: str = "USD"
    max_amount: float = 1_000_000.0  # in USD at reference rates (PER_USD); else as given
    max_bytes: int = 64 * 1024


DEFAULT_CONFIG = DecoderConfig()
_DECODER = msgspec.json.Decoder(_Wire)
_ENCODER = msgspec.json.Encoder()


def decode(data: bytes, config: DecoderConfig = DEFAULT_CONFIG) -> Transaction:
    """Decode and validate one message; raise DecodeError (never anything else) if bad."""
    if len(data) > config.max_bytes:
        raise DecodeError("too_large", f"message is {len(data)} bytes; the limit is "
                          f"{config.max_bytes}")
    try:
        wire = _DECODER.decode(data)
    except msgspec.ValidationError as exc:
        raise _validation_error(str(exc)) from None
    except UnicodeDecodeError as bad:  # invalid UTF-8 inside a JSON string
        raise DecodeError("not_utf8", f"message is not UTF-8 ({bad.reason})") from None
    except msgspec.DecodeError as exc:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as bad:
            raise DecodeError("not_utf8", f"message is not UTF-8 ({bad.reason} at byte "
                              f"{bad.start})") from None
        raise DecodeError("invalid_json", str(exc)) from None

    amount = _alias(wire.amount, wire.value, "amount", "value")
    user_id = _alias(wire.user_id, wire.customer_id, "user_id", "customer_id")
    site_id = _alias(wire.site_id, wire.merchant_id, "site_id", "merchant_id")
    country = _alias(wire.country, wire.merchant_country, "country", "merchant_country")

    country = country.upper()
    if country not in COUNTRIES:
        raise DecodeError("invalid_country", f"country {country[:16]!r} is not an ISO 3166-1 "
                          "alpha-2 code")
    currency = (wire.currency or config.default_currency).upper()
    exponent = CURRENCY_EXPONENT.get(currency)
    if exponent is None:
        raise DecodeError("invalid_currency", f"currency {currency[:16]!r} is not an ISO 4217 "
                          "code")
    return Transaction(
        transaction_id=_id(wire.transaction_id, "transaction_id"),
        event_ms=parse_event_ms(wire.timestamp),
        amount_minor=_amount_minor(amount, currency, exponent, config.max_amount),
        currency=currency,
        card_id=_id(wire.card_id, "card_id"),
        user_id=_id(user_id, "user_id"),
        site_id=_id(site_id, "site_id"),
        country=country,
        device_id=None if wire.device_id is None else _id(wire.device_id, "device_id"),
        ip_address=None if wire.ip_address is None else _id(wire.ip_address, "ip_address"),
        merchant_category=(None if wire.merchant_category is None
                           else _category(wire.merchant_category)),
        card_present=wire.card_present,
    )


def encode(tx: Transaction) -> bytes:
    """Canonical JSON (SPEC §3.1 names, ISO timestamp); ``decode(encode(tx)) == tx``."""
    return _ENCODER.encode(_CanonicalWire(
        transaction_id=tx.transaction_id, timestamp=tx.timestamp, amount=tx.amount,
        currency=tx.currency, card_id=tx.card_id, user_id=tx.user_id, site_id=tx.site_id,
        country=tx.country, device_id=tx.device_id, ip_address=tx.ip_address,
        merchant_category=tx.merchant_category, card_present=tx.card_present))


def iso_from_ms(event_ms: int) -> str:
    """``2026-01-01T10:00:00.123Z`` for an epoch-millisecond time (hot path: no strftime)."""
    days, ms = divmod(event_ms, 86_400_000)
    date = _DATES.get(days)
    if date is None:
        date = _DATES[days] = datetime.fromtimestamp(days * 86_400, UTC).strftime("%Y-%m-%dT")
    seconds, millis = divmod(ms, 1000)
    return date + _CLOCK[seconds] + _MILLIS[millis]


_DATES: dict[int, str] = {}
_CLOCK = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86_400)]
_MILLIS = [f".{ms:03d}Z" for ms in range(1000)]


def _validation_error(message: str) -> DecodeError:
    if message.startswith("Object missing required field"):
        field = message.split("`")[1]
        return DecodeError("missing_field", f"required field {field!r} is missing")
    if message.startswith("Expected `object`"):
        return DecodeError("not_an_object", "a transaction must be a JSON object")
    if message.startswith("Number out of range"):
        return DecodeError("wrong_type", message)
    return DecodeError("wrong_type", message.replace("`$.", "`"))


def _alias(canonical: str | float | None, alias: str | float | None,
           name: str, alias_name: str) -> str:
    if canonical is None:
        if alias is None:
            raise DecodeError("missing_field", f"required field {name!r} (or its alias "
                              f"{alias_name!r}) is missing")
        return alias  # type: ignore[return-value]
    if alias is not None and alias != canonical:
        raise DecodeError("conflicting_fields", f"{name!r} and its alias {alias_name!r} "
                          "disagree")
    return canonical  # type: ignore[return-value]


def _id(value: str, field: str) -> str:
    if not value or len(value) > MAX_ID_LENGTH:
        raise DecodeError("invalid_id", f"{field} must have 1-{MAX_ID_LENGTH} characters "
                          f"(got {len(value)})")
    if not value.isprintable() or value != value.strip():
        raise DecodeError("invalid_id", f"{field} contains control characters or "
                          "surrounding blanks")
    return value


def _category(value: str) -> str:
    if len(value) > MAX_CATEGORY_LENGTH or not value.isprintable():
        raise DecodeError("invalid_category", f"merchant_category must be printable text of at "
                          f"most {MAX_CATEGORY_LENGTH} characters")
    return value


def parse_event_ms(value: str | int | float) -> int:
    if isinstance(value, str):
        if _NUMERIC.fullmatch(value):
            seconds = float(value)
        else:
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                raise DecodeError("invalid_timestamp", f"timestamp {value[:40]!r} is neither "
                                  "ISO-8601 nor epoch seconds") from None
            if parsed.tzinfo is None:
                raise DecodeError("invalid_timestamp", f"timestamp {value[:40]!r} has no time "
                                  "zone (add Z or +hh:mm)")
            seconds = parsed.timestamp()
    else:
        seconds = float(value)
    if not math.isfinite(seconds):
        raise DecodeError("invalid_timestamp", "timestamp is not a finite number")
    event_ms = round(seconds * 1000)
    if not MIN_EVENT_MS <= event_ms < MAX_EVENT_MS:
        raise DecodeError("timestamp_out_of_range", f"timestamp {seconds!r} s is outside "
                          "2000-01-01..2100-01-01")
    return event_ms


def _amount_minor(value: str | float, currency: str, exponent: int, max_amount: float) -> int:
    if isinstance(value, str):
        if not _NUMERIC.fullmatch(value):
            raise DecodeError("invalid_amount", f"amount {value[:40]!r} is not a decimal number")
        amount = float(value)
    else:
        amount = value
    if not amount > 0:
        raise DecodeError("invalid_amount", f"amount must be positive (got {amount!r})")
    if amount / PER_USD.get(currency, 1.0) > max_amount:  # the limit is in USD
        raise DecodeError("amount_out_of_range", f"amount {amount!r} {currency} exceeds the "
                          f"maximum of {max_amount:g} USD")
    scaled = amount * 10 ** exponent
    minor = round(scaled)
    if minor < 1 or abs(scaled - minor) > 1e-6 * scaled:
        raise DecodeError("invalid_amount", f"amount {amount!r} has more decimal places than "
                          f"{currency} allows ({exponent})")
    return minor
