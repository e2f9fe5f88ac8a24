"""Parse one expression with Jinja2's sandboxed parser, and find its static references.

The syntax is exactly Jinja2's expression syntax. References are the
chains of constant steps that start at a top-level name (``var.m["k"].x``);
they become the dependency graph's edges. Nothing here evaluates anything.
"""

from __future__ import annotations

import re
import warnings

from jinja2 import TemplateSyntaxError, nodes
from jinja2.parser import Parser
from jinja2.sandbox import SandboxedEnvironment

from kplan.config.functions import FUNCTIONS

__all__ = [
    "ROOTS",
    "RefPath",
    "Unsupported",
    "chain",
    "collect_refs",
    "parse",
    "static_reference",
    "syntax_message",
]

RefPath = tuple[str, tuple[str | int, ...]]  # (root, parts) as in expr.Reference

# Jinja's lexer warns about "\ " in a string literal; the user sees the literal as written.
warnings.filterwarnings("ignore", "invalid escape sequence", DeprecationWarning, "jinja2.lexer")

ROOTS = frozenset(
    {"var", "local", "module", "each", "count", "host", "hosts", "groups", "path", "self"}
)

# Delimiters that never occur, so "}}" or "{%" inside an expression are plain tokens.
_ENV = SandboxedEnvironment(
    variable_start_string="\x00{{",
    variable_end_string="}}\x00",
    block_start_string="\x00{%",
    block_end_string="%}\x00",
    comment_start_string="\x00{#",
    comment_end_string="#}\x00",
)


class Unsupported(Exception):
    """A construct kplan does not accept (a filter, a call of a non-function, ...)."""

    def __init__(self, message: str, code: str = "expression-syntax") -> None:
        super().__init__(message)
        self.message, self.code = message, code


_AT = re.compile(r" at (\d+)$")


def syntax_message(exc: TemplateSyntaxError) -> tuple[str, int]:
    msg = exc.message or "invalid syntax"
    offset = 0
    m = _AT.search(msg)
    if m:
        offset, msg = int(m.group(1)), msg[: m.start()]
    for jinja, ours in (
        ("'end of template'", "end of expression"),
        ("end of print statement", "end of expression"),
        ("expected token ", "expected "),
        ("unexpected char ", "unexpected character "),
    ):
        msg = msg.replace(jinja, ours)
    return msg, offset


def parse(source: str) -> nodes.Expr:
    parser = Parser(_ENV, source, state="variable")
    expr = parser.parse_expression()
    if not parser.stream.eos:
        tok = parser.stream.current
        raise Unsupported(f"unexpected {tok.value!r} after the expression")
    return expr


def static_reference(source: str) -> RefPath | None:
    """The reference that ``source`` is (var.x, local_file.conf), or None if it is not one."""
    try:
        tree = parse(source)
    except (TemplateSyntaxError, Unsupported, RecursionError, MemoryError):
        return None
    base, steps, dynamic = chain(tree)
    if dynamic or not isinstance(base, nodes.Name):
        return None
    return _ref_of(base.name, steps)


# -- references -------------------------------------------------------------------


def chain(node: nodes.Expr) -> tuple[nodes.Expr, list[str | int], list[nodes.Node]]:
    """Split a.b["c"][x].d into its base, its constant steps from the base, and the rest."""
    steps: list[str | int] = []
    dynamic: list[nodes.Node] = []
    while isinstance(node, nodes.Getattr | nodes.Getitem):
        if isinstance(node, nodes.Getattr):
            steps.append(node.attr)
        elif isinstance(node.arg, nodes.Const) and type(node.arg.value) in (str, int):
            steps.append(node.arg.value)
        else:
            steps.clear()  # only the steps before a computed one are static
            dynamic.append(node.arg)
        node = node.node
    steps.reverse()
    return node, steps, dynamic


def _ref_of(name: str, steps: list[str | int]) -> RefPath | None:
    if name == "null" or name in FUNCTIONS:
        return None
    if name in ROOTS:
        return (name, tuple(steps))
    return ("resource", (name, *steps))


def collect_refs(node: nodes.Node, out: list[RefPath]) -> None:
    if isinstance(node, nodes.Getattr | nodes.Getitem | nodes.Name):
        base, steps, dynamic = chain(node)
        if isinstance(base, nodes.Name):
            ref = _ref_of(base.name, steps)
            if ref is not None:
                out.append(ref)
        else:
            collect_refs(base, out)
        for d in dynamic:
            collect_refs(d, out)
        return
    if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name):
        children: list[nodes.Node] = [*node.args, *node.kwargs]
        children += [n for n in (node.dyn_args, node.dyn_kwargs) if n is not None]
    else:
        children = list(node.iter_child_nodes())
    for child in children:
        collect_refs(child, out)
