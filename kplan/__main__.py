"""``python -m kplan``: the same as the ``kplan`` command."""

from kplan.client import main

main()
