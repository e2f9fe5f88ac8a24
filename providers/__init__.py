"""Resource types, each group a plugin found through the ``kplan.providers`` entry points.

Every provider here registers in pyproject.toml exactly as a third-party one
would, and talks to the engine only through :mod:`kplan.provider_api`
(request in, response with diagnostics out). Nothing in this package imports
from ``kplan.cli``, ``kplan.plan`` or ``kplan.apply``, and the engine never
imports this package directly.
"""
