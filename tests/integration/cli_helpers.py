"""Run the real `fraudgraph` console script in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

FRAUDGRAPH = str(Path(sys.executable).parent / "fraudgraph")


def run_cli(*args: str, env: Mapping[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run([FRAUDGRAPH, *args], capture_output=True, text=True, env=full_env,
                          timeout=timeout, check=False)
