"""The command-line interface: one module per command group.

Commands stay thin: parse arguments, call the engine, pick a renderer. The
one place that turns errors into messages and exit codes is ``main.main``.
"""
