"""Find a Java 17 or 21 runtime: Neo4j 5.26 supports exactly those.

Another, newer JDK may be first on PATH, so the JDK is pinned explicitly.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from fraudgraph.errors import StackError

SUPPORTED = (17, 21)
CANDIDATES = (
    "/usr/lib/jvm/java-17-openjdk-amd64",
    "/usr/lib/jvm/java-17-openjdk-arm64",
    "/usr/lib/jvm/java-17-openjdk",
    "/usr/lib/jvm/temurin-17-jdk-amd64",
    "/usr/lib/jvm/java-21-openjdk-amd64",
    "/usr/lib/jvm/java-21-openjdk-arm64",
    "/usr/lib/jvm/java-21-openjdk",
)


def major_version(version_output: str) -> int | None:
    """Parse ``java -version`` output ('openjdk version "17.0.15" ...') into 17."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 and match.group(2) else major


def java_major(java_home: Path) -> int | None:
    binary = java_home / "bin" / "java"
    if not binary.exists():
        return None
    out = subprocess.run([str(binary), "-version"], capture_output=True, text=True, check=False)
    return major_version(out.stderr + out.stdout)


def find_java_home(configured: Path | None) -> Path:
    """The configured JDK if it is 17/21, else the first supported one found."""
    if configured is not None:
        major = java_major(configured)
        if major not in SUPPORTED:
            raise StackError(
                f"FRAUDGRAPH_JAVA_HOME={configured} is Java {major or 'not found'}; "
                "Kafka and Neo4j 5.26 need Java 17 or 21")
        return configured
    for candidate in CANDIDATES:
        if java_major(Path(candidate)) in SUPPORTED:
            return Path(candidate)
    raise StackError("no Java 17 or 21 found under /usr/lib/jvm: install openjdk-17-jdk-headless "
                     "or set FRAUDGRAPH_JAVA_HOME")
