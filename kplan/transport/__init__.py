"""Transport to hosts: one SSH session per host, or ``connection: local``."""
