"""kplan: plan and apply containerized OpenStack control planes.

The engine lives here and knows nothing of Docker, TLS or OpenStack; resource
types come from providers found through the ``kplan.providers`` entry points.
"""

__version__ = "0.1.0.dev0"
