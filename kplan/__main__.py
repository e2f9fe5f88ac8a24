"""``python -m kplan``: the same as the ``kplan`` command."""

from kplan.cli.main import main

main()
