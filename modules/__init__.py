"""kplan's service catalog, installed as ``kplan_catalog``: one folder a module.

Registered under the ``kplan.catalogs`` entry point as ``kplan``; a
``source: kplan/NAME`` module call loads the folder ``NAME`` found here (or
in another registered catalog) through ``importlib.resources``. See README.md.
"""
