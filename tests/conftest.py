"""Test-wide settings.

Hypothesis runs derandomized by default so that CI is reproducible: the same
examples every run. Set KPLAN_FUZZ=1 to explore new random examples locally
(and keep any failure it finds as an @example).
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None)
settings.register_profile("fuzz", deadline=None, max_examples=2000)
settings.load_profile("fuzz" if os.environ.get("KPLAN_FUZZ") else "ci")

# Every kplan a test starts runs in its own process: a kplan server the developer
# keeps running (kplan server start) is not under test, but tests/e2e/test_server.py.
os.environ["KPLAN_SERVER"] = "off"
