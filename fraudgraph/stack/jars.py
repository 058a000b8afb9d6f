"""Resolve Kafka's and Neo4j's runtime jars from Maven Central, once, into the cache.

``compose/local-stack/<name>.pom.xml`` is a throwaway pom; Maven's
``dependency:copy-dependencies`` copies its runtime closure into
``<cache_dir>/jars/<name>-<pom hash>/lib``.  Changing the pom changes the hash,
so a new version is fetched beside the old one; a finished fetch is marked
``complete`` and never repeated.  The Maven repository itself also lives in the
cache (``<cache_dir>/m2``), so deleting the cache gives a truly fresh fetch.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path

from fraudgraph.errors import StackError
from fraudgraph.stack import RECIPES

DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1"

#: Entries that must be present in the resolved jars, per stack component.
REQUIRED_ENTRIES: dict[str, tuple[str, ...]] = {
    "kafka": (
        "kafka/Kafka.class",
        "kafka/tools/StorageTool.class",
        "org/slf4j/impl/StaticLoggerBinder.class",  # the reload4j binding
    ),
    "neo4j": (
        "org/neo4j/server/CommunityEntryPoint.class",
        "org/neo4j/server/startup/Neo4jAdminCommand.class",
        "browser/index.html",
    ),
}


def jar_dir(name: str, cache_dir: Path) -> Path:
    pom = RECIPES / f"{name}.pom.xml"
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:12]
    return cache_dir / "jars" / f"{name}-{digest}"


def resolved_jars(lib: Path) -> list[str]:
    """Sorted jar file names in ``lib`` (what compose/local-stack/<name>.jars.txt records)."""
    return sorted(p.name for p in lib.glob("*.jar"))


def missing_entries(name: str, lib: Path) -> list[str]:
    wanted = set(REQUIRED_ENTRIES[name])
    for jar in lib.glob("*.jar"):
        if not wanted:
            break
        with zipfile.ZipFile(jar) as archive:
            wanted -= wanted.intersection(archive.namelist())
    return sorted(wanted)


def ensure_jars(name: str, cache_dir: Path, java_home: Path,
                report: Callable[[str], None]) -> Path:
    """Return the ``lib`` folder holding ``name``'s jars, fetching them first if needed."""
    target = jar_dir(name, cache_dir)
    lib = target / "lib"
    if (target / "complete").exists() and lib.is_dir():
        return lib
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("Maven (mvn) is not installed: run `apt-get install maven` "
                         "(scripts/bootstrap.sh does this) and retry")
    report(f"fetching {name} jars from Maven Central into {target} (once)")
    partial = target / "lib.partial"
    shutil.rmtree(partial, ignore_errors=True)
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(RECIPES / f"{name}.pom.xml", target / "pom.xml")
    argv = [mvn, "-B", "-q", "-f", str(target / "pom.xml"),
            f"-Dmaven.repo.local={cache_dir / 'm2'}",
            f"{DEPENDENCY_PLUGIN}:copy-dependencies",
            "-DincludeScope=runtime", f"-DoutputDirectory={partial}"]
    env = {**os.environ, "JAVA_HOME": str(java_home)}
    result = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        detail = (result.stdout + result.stderr).strip().splitlines()[-5:]
        raise StackError(f"Maven could not fetch the {name} jars (exit {result.returncode}): "
                         + " | ".join(detail))
    missing = missing_entries(name, partial)
    if missing:
        raise StackError(f"the fetched {name} jars lack {', '.join(missing)}: "
                         f"check compose/local-stack/{name}.pom.xml")
    shutil.rmtree(lib, ignore_errors=True)
    partial.rename(lib)
    (target / "complete").write_text("\n".join(resolved_jars(lib)) + "\n")
    return lib
