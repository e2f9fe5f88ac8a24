#!/usr/bin/env bash
# The project's checks, as CI runs them: lint, format, types, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
ruff check kplan providers tests benchmarks scripts
ruff format --check kplan providers tests benchmarks scripts
mypy
mypy --strict providers
python -m pytest -q "$@"
