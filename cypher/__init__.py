"""The Cypher query library: one named, parameterised query per ``.cypher`` file.

Each file starts with a ``//`` header (name, purpose, params, returns); the text
is sent to Neo4j as is, with parameters as the only variables.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

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
