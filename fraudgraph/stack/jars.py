"""Resolve Kafka's and Neo4j's runtime jars from Maven Central, once, into the cache.

``compose/local-stack/<name>.pom.xml`` is a throwaway pom; Maven's
``dependency:copy-dependencies`` copies its runtime closure into
``<cache_dir>/jars/<name>-<pom hash>/lib``.  Changing the pom changes the hash,
so a new version is fetched beside the old one; a finished fetch is marked
``complete`` and never repeated.  The Maven repository itself also lives in the
cache (``<cache_dir>/m2``), so deleting the cache gives a truly fresh fetch.

What runs is pinned, not just named: Maven downloads with ``--strict-checksums``
(a download that does not match Maven Central's checksum fails the fetch), and
``compose/local-stack/<name>.jars.txt`` records the sha256 of every jar, in
``sha256sum`` format.  A fresh fetch must produce exactly that list, and the
cached jars are checked against it again each time a service is started from them.
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
    """``<sha256>  <file name>`` of each jar in ``lib``, by name: the lines that
    compose/local-stack/<name>.jars.txt records (``sha256sum -c`` reads them)."""
    return [f"{_sha256(jar)}  {jar.name}" for jar in sorted(lib.glob("*.jar"))]


def recorded_jars(name: str, recipes: Path = RECIPES) -> list[str]:
    """The pinned lines of ``<recipes>/<name>.jars.txt`` (comments and blanks left out)."""
    lines = (recipes / f"{name}.jars.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def jar_differences(recorded: list[str], found: list[str]) -> list[str]:
    """What differs between two jar lists, one short phrase per jar, by jar name."""
    def by_name(lines: list[str]) -> dict[str, str]:
        return {line.split()[-1]: line.split()[0] for line in lines}

    want, have = by_name(recorded), by_name(found)
    differences = []
    for jar in sorted(want.keys() | have.keys()):
        if jar not in have:
            differences.append(f"{jar} is missing")
        elif jar not in want:
            differences.append(f"{jar} is not recorded")
        elif want[jar] != have[jar]:
            differences.append(f"{jar} has sha256 {have[jar][:12]}…, recorded {want[jar][:12]}…")
    return differences


def verify_jars(name: str, lib: Path, recipes: Path = RECIPES) -> None:
    """Check the cached ``lib`` against the recorded list; raise StackError if it differs."""
    differences = jar_differences(recorded_jars(name, recipes), resolved_jars(lib))
    if differences:
        raise StackError(
            f"the {name} jars in {lib} do not match compose/local-stack/{name}.jars.txt "
            f"({differences[0]}, {len(differences)} in all): remove {lib.parent} to fetch "
            "them again")


def missing_entries(name: str, lib: Path) -> list[str]:
    wanted = set(REQUIRED_ENTRIES[name])
    for jar in lib.glob("*.jar"):
        if not wanted:
            break
        with zipfile.ZipFile(jar) as archive:
            wanted -= wanted.intersection(archive.namelist())
    return sorted(wanted)


def ensure_jars(name: str, cache_dir: Path, java_home: Path,
                report: Callable[[str], None], recipes: Path = RECIPES) -> Path:
    """Return the ``lib`` folder holding ``name``'s jars, fetching them first if needed.

    Either way the jars are the recorded ones (sha256), or a StackError says which is not.
    """
    target = jar_dir(name, cache_dir)
    lib = target / "lib"
    if (target / "complete").exists() and lib.is_dir():
        verify_jars(name, lib, recipes)
        return lib
    report(f"fetching {name} jars from Maven Central into {target} (once)")
    partial = target / "lib.partial"
    _maven_copy_dependencies(name, target, partial, cache_dir, java_home)
    missing = missing_entries(name, partial)
    if missing:
        raise StackError(f"the fetched {name} jars lack {', '.join(missing)}: "
                         f"check compose/local-stack/{name}.pom.xml")
    found = resolved_jars(partial)
    differences = jar_differences(recorded_jars(name, recipes), found)
    if differences:
        (target / "resolved.jars.txt").write_text("\n".join(found) + "\n")
        raise StackError(
            f"the {name} jars Maven resolved differ from compose/local-stack/{name}.jars.txt "
            f"({differences[0]}, {len(differences)} in all): if {name}.pom.xml changed on "
            f"purpose, review {target / 'resolved.jars.txt'} and copy it over the recorded "
            f"list; if not, the local Maven repository was altered: remove {cache_dir / 'm2'} "
            "and retry")
    shutil.rmtree(lib, ignore_errors=True)
    partial.rename(lib)
    (target / "complete").write_text("\n".join(found) + "\n")
    return lib


def _maven_copy_dependencies(name: str, target: Path, partial: Path, cache_dir: Path,
                             java_home: Path) -> None:
    """Run Maven on a copy of ``<name>.pom.xml``: its runtime closure into ``partial``."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("Maven (mvn) is not installed: run `apt-get install maven` "
                         "(scripts/bootstrap.sh does this) and retry")
    shutil.rmtree(partial, ignore_errors=True)
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(RECIPES / f"{name}.pom.xml", target / "pom.xml")
    # --strict-checksums: a download whose checksum does not match fails the fetch
    # (Maven's default only warns).
    argv = [mvn, "-B", "-q", "--strict-checksums", "-f", str(target / "pom.xml"),
            f"-Dmaven.repo.local={cache_dir / 'm2'}",
            f"{DEPENDENCY_PLUGIN}:copy-dependencies",
            "-DincludeScope=runtime", f"-DoutputDirectory={partial}"]
    env = {**os.environ, "JAVA_HOME": str(java_home)}
    result = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        detail = (result.stdout + result.stderr).strip().splitlines()[-5:]
        raise StackError(f"Maven could not fetch the {name} jars (exit {result.returncode}): "
                         + " | ".join(detail))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
