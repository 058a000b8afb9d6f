"""Integration fixtures: the real local stack, started (idempotently) once per session.

Nothing here skips: if a service cannot be started the tests error, in CI and locally.
"""

from __future__ import annotations

import logging
import uuid

import pytest

from fraudgraph.settings import Settings, load_settings
from fraudgraph.stack import manager

log = logging.getLogger("tests.stack")


@pytest.fixture(scope="session")
def stack() -> Settings:
    """Settings of the running default stack (secrets filled in)."""
    settings, statuses = manager.up(load_settings(), log.info)
    unhealthy = [s for s in statuses if s.health != "healthy"]
    assert not unhealthy, f"stack not healthy: {unhealthy}"
    return settings


@pytest.fixture
def unique() -> str:
    """A short unique suffix for this test's topics, groups, labels and tables."""
    return uuid.uuid4().hex[:10]
