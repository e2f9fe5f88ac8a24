"""``kplan lab``: disposable test hosts on one Linux machine."""
