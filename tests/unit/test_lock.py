"""requirements-lock.txt (what scripts/bootstrap.sh installs, hash-checked) covers
pyproject.toml: every dependency, every extra the bootstrap uses and the build backend
is pinned there, within its range, with hashes.  A dependency added to pyproject.toml
without regenerating the lock fails here, not on a fresh machine."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).parents[2]
LOCK = ROOT / "requirements-lock.txt"


def locked() -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes), from the lock's ``name==version \\ --hash=...`` entries."""
    text = LOCK.read_text().replace("\\\n", " ")
    pins = {}
    for line in text.splitlines():
        match = re.match(r"([A-Za-z0-9_.-]+)==(\S+)(.*)", line)
        if match:
            hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})", match.group(3))
            pins[canonicalize_name(match.group(1))] = (match.group(2), hashes)
    return pins


def wanted() -> list[Requirement]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = pyproject["project"]
    lines = [*project["dependencies"], *pyproject["build-system"]["requires"]]
    for extra in ("dev", "gnn"):  # scripts/bootstrap.sh installs both
        lines += project["optional-dependencies"][extra]
    return [Requirement(line) for line in lines]


def test_the_lock_pins_every_dependency_within_its_range() -> None:
    pins = locked()
    for requirement in wanted():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in {LOCK.name}: regenerate it (see its header)"
        version, _ = pins[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{LOCK.name} pins {name}=={version}, outside {requirement}: regenerate it")


def test_every_pin_has_hashes() -> None:
    pins = locked()
    assert len(pins) > 50
    assert all(hashes for _, hashes in pins.values()), [n for n, (_, h) in pins.items() if not h]
    assert pins["torch"][0] == "2.15.0"


def test_the_bootstrap_installs_from_the_lock_with_hashes() -> None:
    script = (ROOT / "scripts" / "bootstrap.sh").read_text()
    assert 'pip install -q --require-hashes -r "$lock"' in script
    assert "pip install -q --no-deps --no-build-isolation -e ." in script
    assert 'cat pyproject.toml "$lock" | sha256sum' in script  # a new lock reinstalls
