"""Loading modules: ``*.kp.yaml`` files → configuration models, expressions, variables.

Every node keeps its file, line and column so that each error names them.
Nothing here talks to providers, state or hosts; expressions are evaluated
in a sandbox, never with Python ``eval``.
"""
