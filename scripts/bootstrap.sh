#!/usr/bin/env bash
# Install everything fraudgraph needs on a fresh machine, idempotently:
#   OS packages (Java 17, Maven, PostgreSQL server) when missing, via apt-get as root;
#   a virtual environment in .venv with fraudgraph and its dev tools, from the hash-pinned
#   requirements-lock.txt.
# Downloads are cached outside the checkout (~/.cache/pip, ~/.cache/fraudgraph).
# Source it (`. scripts/bootstrap.sh`) to get .venv/bin on PATH.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

need_pkgs=()
ls /usr/lib/jvm/java-17-openjdk-* >/dev/null 2>&1 || ls /usr/lib/jvm/java-21-openjdk-* >/dev/null 2>&1 \
  || need_pkgs+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null 2>&1 || need_pkgs+=(maven)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || [ -n "${FRAUDGRAPH_POSTGRES_DSN:-}" ] \
  || need_pkgs+=(postgresql)
[ -x /usr/bin/chromium ] || need_pkgs+=(chromium)  # headless, for the Neo4j Browser test
[ -x /usr/bin/chromedriver ] || need_pkgs+=(chromium-driver)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: missing OS packages: ${need_pkgs[*]}; install them (sudo apt-get install ${need_pkgs[*]})" >&2
    exit 1
  fi
  echo "· installing OS packages: ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
  # Debian's postgresql package starts a system cluster on 5432; the stack runs its own.
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
# Python packages come from requirements-lock.txt: every version pinned and every file
# checked against its sha256 (--require-hashes), the build backend included, so the
# editable install of fraudgraph itself fetches nothing (--no-deps --no-build-isolation).
# The lock is for Linux x86_64 and CPython 3.11; see its header to regenerate it.
# Reinstalled when pyproject.toml or the lock changes.
lock=requirements-lock.txt
stamp=.venv/.installed-$(cat pyproject.toml "$lock" | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "· creating .venv and installing fraudgraph from $lock (pip cache: ~/.cache/pip)"
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --require-hashes -r "$lock"  # torch: ~3 GB, once
  .venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
  rm -f .venv/.installed-*
  touch "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
