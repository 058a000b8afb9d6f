"""The Cypher query library: one named, parameterised query per ``.cypher`` file.

Each file starts with a ``//`` header (name, purpose, params, returns); the text
is sent to Neo4j as is, with parameters as the only variables.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

LIBRARY = Path(__file__).resolve().parent


def names() -> list[str]:
    return sorted(p.stem for p in LIBRARY.glob("*.cypher"))


@cache
def load(name: str) -> str:
    """The text of ``cypher/<name>.cypher``; KeyError naming close matches if unknown."""
    path = LIBRARY / f"{name}.cypher"
    if not path.is_file():
        raise KeyError(f"no query named {name!r} in {LIBRARY}")
    return path.read_text()


def statements(name: str) -> list[str]:
    """The ``;``-separated statements of a multi-statement file, header comments removed."""
    body = "\n".join(line for line in load(name).splitlines() if not line.startswith("//"))
    return [statement.strip() for statement in body.split(";") if statement.strip()]


# -- headers: every file documents itself ------------------------------------------------

_WRITES = re.compile(r"\b(CREATE|MERGE|SET|DELETE|REMOVE|DETACH)\b", re.IGNORECASE)
_PARAM_USE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class Param:
    """``name: type`` or ``name: type = default`` (default as written, a Cypher literal)."""

    name: str
    type: str
    default: str | None = None


@dataclass(frozen=True)
class Query:
    name: str
    purpose: str
    params: tuple[Param, ...]
    returns: tuple[tuple[str, str], ...]
    body: str

    @property
    def writes(self) -> bool:
        """True for queries that change the graph (projection, detectors, maintenance)."""
        return bool(_WRITES.search(_strip_strings(self.body)))

    @property
    def used_params(self) -> set[str]:
        return set(_PARAM_USE.findall(_strip_strings(self.body)))


class HeaderError(ValueError):
    """A .cypher file's header is missing a line or does not parse."""


def query(name: str) -> Query:
    """The parsed header and body of ``cypher/<name>.cypher``."""
    text = load(name)
    header: dict[str, str] = {}
    body_lines: list[str] = []
    for line in text.splitlines():
        if line.startswith("//") and not body_lines:
            key, _, value = line[2:].strip().partition(":")
            header[key.strip()] = value.strip()
        else:
            body_lines.append(line)
    for key in ("name", "purpose", "params", "returns"):
        if not header.get(key):
            raise HeaderError(f"{name}.cypher: header line `// {key}: ...` is missing")
    if header["name"] != name:
        raise HeaderError(f"{name}.cypher: header names it {header['name']!r}")
    params = () if header["params"] == "none" else tuple(
        _param(item, name) for item in _split(header["params"]))
    returns = () if header["returns"] == "nothing" else tuple(
        _pair(item, name, "returns") for item in _split(header["returns"]))
    return Query(name, header["purpose"], params, returns, "\n".join(body_lines).strip())


def _param(item: str, name: str) -> Param:
    declared, _, default = item.partition("=")
    param_name, param_type = _pair(declared, name, "params")
    return Param(param_name, param_type, default.strip() or None)


def _pair(item: str, name: str, what: str) -> tuple[str, str]:
    key, sep, kind = item.partition(":")
    if not sep or not key.strip().isidentifier() or not kind.strip():
        raise HeaderError(f"{name}.cypher: {what} item {item.strip()!r} is not `name: type`")
    return key.strip(), kind.strip()


def _split(text: str) -> list[str]:
    """Split on commas outside <...>, {...} and (...)."""
    items: list[str] = []
    depth, current = 0, list[str]()
    for char in text:
        if char in "<{(":
            depth += 1
        elif char in ">})":
            depth -= 1
        if char == "," and depth == 0:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    items.append("".join(current))
    return [item for item in items if item.strip()]


def _strip_strings(body: str) -> str:
    return re.sub(r"'[^']*'|\"[^\"]*\"", "''", body)


class ParamError(ValueError):
    """A parameter given to a query is missing, unknown or of the wrong type."""


def bind(q: Query, given: dict[str, str]) -> dict[str, Any]:
    """Typed parameters for ``q`` from text values (``--param key=value``), defaults filled
    in.  Lists and maps are written as JSON."""
    declared = {p.name: p for p in q.params}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ParamError(f"{q.name} has no parameter {unknown[0]!r} (its parameters: "
                         f"{', '.join(declared) or 'none'})")
    bound: dict[str, Any] = {}
    for p in q.params:
        text = given.get(p.name, p.default)
        if text is None:
            raise ParamError(f"{q.name} needs --param {p.name}=<{p.type}>")
        bound[p.name] = _convert(text, p)
    return bound


def _convert(text: str, p: Param) -> Any:
    kind = p.type.split("|")[0].strip()
    try:
        if kind == "integer":
            return int(text)
        if kind == "float":
            return float(text)
        if kind == "boolean":
            if text.lower() not in ("true", "false"):
                raise ValueError(text)
            return text.lower() == "true"
        if kind.startswith(("list", "map")):
            value = json.loads(text)
            if not isinstance(value, list if kind.startswith("list") else dict):
                raise ValueError(text)
            return value
        return text.strip("'\"") if text[:1] in "'\"" else text
    except ValueError:
        raise ParamError(f"{p.name} must be {p.type} (got {text!r})") from None
