"""Compile one expression (the text inside ``${ }``) to a Python closure.

Parsing is Jinja2's: a :class:`~jinja2.sandbox.SandboxedEnvironment` parser
reads the expression, so the syntax is exactly Jinja's expression syntax.
The parse tree is then turned into nested closures here instead of Jinja's
generated code: that is several times faster per evaluation, and every
operation goes through kplan's rules (UNKNOWN, Secret, clear errors) in
``expr_ops``. There is no ``eval``, and no Python attribute of any value is
ever read: ``a.b`` is a map lookup, calls reach only the function library.

Each compiled expression also carries its static references (``expr_parse``).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import TemplateSyntaxError, nodes

from kplan.config.expr_lookup import Access, chain_text, lookup, root_value, slice_value
from kplan.config.expr_ops import EvalFailure, arith, compare, join_text, negate, truthy
from kplan.config.expr_parse import (
    ROOTS,
    RefPath,
    Unsupported,
    chain,
    collect_refs,
    parse,
    static_reference,
    syntax_message,
)
from kplan.config.functions import FUNCTIONS, FunctionError, call_function
from kplan.config.functions_base import as_secret, type_name
from kplan.config.overrides import READS_KEY
from kplan.values import UNKNOWN, Secret

__all__ = ["ROOTS", "Compiled", "Fn", "RefPath", "compile_source", "static_reference"]

Scope = Mapping[str, Any]
_MISSING: Any = object()
Fn = Callable[[Scope], Any]


@dataclass(frozen=True, slots=True)
class Compiled:
    fn: Fn | None  # None when there is an error
    refs: tuple[RefPath, ...]
    error: str | None = None  # a syntax error, already worded for users
    error_offset: int = 0  # where in the expression text, approximately
    error_code: str = "expression-syntax"


def compile_source(source: str) -> Compiled:
    """Parse and compile an expression; errors are returned in the result, never raised."""
    if not source.strip():
        return Compiled(None, (), "empty expression: expected a value between ${ and }")
    try:
        tree = parse(source)
    except TemplateSyntaxError as exc:
        msg, offset = syntax_message(exc)
        return Compiled(None, (), msg, offset)
    except Unsupported as exc:
        return Compiled(None, (), exc.message)
    except (RecursionError, MemoryError):
        return Compiled(None, (), "expression nested too deeply")
    refs: list[RefPath] = []
    try:
        collect_refs(tree, refs)
        return Compiled(_compile(tree), tuple(refs))
    except Unsupported as exc:
        return Compiled(None, tuple(refs), exc.message, 0, exc.code)
    except (RecursionError, MemoryError):
        return Compiled(None, tuple(refs), "expression nested too deeply")


# -- compilation ----------------------------------------------------------------------


def _compile(node: nodes.Node) -> Fn:
    handler = _HANDLERS.get(type(node))
    if handler is None:
        raise Unsupported(f"{type(node).__name__.lower()} expressions are not supported")
    return handler(node)


def _const(node: nodes.Const) -> Fn:
    value = node.value
    if type(value) not in (str, int, float, bool, type(None)):
        raise Unsupported("unsupported constant")
    return lambda s: value


def _name(node: nodes.Name) -> Fn:
    name = node.name
    if name == "null":
        return lambda s: None
    if name in FUNCTIONS:
        raise Unsupported(f'"{name}" is a function; call it as {FUNCTIONS[name].usage}')
    if name not in ROOTS:

        def resource_type(s: Scope) -> Any:
            found = s.get(name, _MISSING)
            return found if found is not _MISSING else root_value(s, name, ROOTS)

        return resource_type

    def root(s: Scope) -> Any:
        try:
            return s[name]
        except KeyError:
            return root_value(s, name, ROOTS)

    return root


def _access(node: nodes.Getattr | nodes.Getitem) -> Access:
    base, steps, dynamic = chain(node.node)
    if dynamic or not isinstance(base, nodes.Name):
        return Access("value", None, ())
    name = base.name
    root = name if name in ROOTS else "resource"
    parts = tuple(steps) if name in ROOTS else (name, *steps)
    return Access(chain_text(name, steps), root, parts)


def _is_lookup(node: nodes.Node) -> bool:
    if isinstance(node, nodes.Getattr):
        return True
    return isinstance(node, nodes.Getitem) and not isinstance(node.arg, nodes.Slice)


def _chain(node: nodes.Getattr | nodes.Getitem) -> Fn:
    """``a.b[c].d``: the whole chain of lookups in one closure (a call for each step
    is most of the cost of the usual expressions). Each step: a plain map holding a
    string key inline, lookup() for the rest (UNKNOWN, Secret, lists, tracked
    instance maps, and every error message)."""
    links: list[nodes.Getattr | nodes.Getitem] = []
    n: nodes.Node = node
    while _is_lookup(n):
        assert isinstance(n, nodes.Getattr | nodes.Getitem)
        links.append(n)
        n = n.node
    links.reverse()
    base = _compile(n)  # first: the same error as before when several parts are wrong
    steps: list[tuple[Any, Fn | None, Access]] = []
    for link in links:
        if isinstance(link, nodes.Getattr):
            steps.append((link.attr, None, _access(link)))
        elif isinstance(link.arg, nodes.Const):
            steps.append((link.arg.value, None, _access(link)))
        else:
            steps.append((None, _compile(link.arg), _access(link)))
    name = n.name if isinstance(n, nodes.Name) and n.name != "null" else None
    if name is not None and len(steps) == 1 and steps[0][1] is None:
        key, _, access = steps[0]

        def one(s: Scope) -> Any:  # var.x, each.key, local.y
            value = s.get(name, _MISSING)
            if value is _MISSING:
                value = root_value(s, name, ROOTS)
            if type(value) is dict and type(key) is str:
                found = value.get(key, _MISSING)
                if found is not _MISSING:
                    return found
            return lookup(value, key, access)

        return one
    chain_steps = tuple(steps)

    def run(s: Scope) -> Any:
        if name is None:
            value = base(s)
        else:
            value = s.get(name, _MISSING)
            if value is _MISSING:
                value = root_value(s, name, ROOTS)
        for key, key_fn, access in chain_steps:
            if key_fn is not None:
                key = key_fn(s)
            if type(value) is dict and type(key) is str:
                found = value.get(key, _MISSING)
                if found is not _MISSING:
                    value = found
                    continue
            value = lookup(value, key, access)
        return value

    return run


def _slice(node: nodes.Getitem) -> Fn:
    base, sl = _compile(node.node), node.arg
    assert isinstance(sl, nodes.Slice)
    parts = [None if n is None else _compile(n) for n in (sl.start, sl.stop, sl.step)]
    return lambda s: slice_value(base(s), [None if p is None else p(s) for p in parts])


def _lookup_or_slice(node: nodes.Getitem) -> Fn:
    return _slice(node) if isinstance(node.arg, nodes.Slice) else _chain(node)


def _call(node: nodes.Call) -> Fn:
    if not isinstance(node.node, nodes.Name):
        raise Unsupported("only functions can be called, by name: join(...), upper(...)")
    name = node.node.name
    fn = FUNCTIONS.get(name)
    if fn is None:
        close = difflib.get_close_matches(name, FUNCTIONS, n=1)
        hint = f'; did you mean "{close[0]}"?' if close else ""
        raise Unsupported(f'unknown function "{name}"{hint}', "unknown-function")
    if node.kwargs or node.dyn_args or node.dyn_kwargs:
        raise Unsupported(f"{fn.usage} takes positional arguments only")
    args = [_compile(a) for a in node.args]
    wants_dir, wants_reads = fn.wants_base_dir, fn.wants_reads

    def call(s: Scope) -> Any:
        values = [a(s) for a in args]
        base_dir = None
        if wants_dir:
            path = s.get("path")
            base_dir = path.get("module") if isinstance(path, dict) else None
        reads = s.get(READS_KEY) if wants_reads else None
        try:
            return call_function(name, values, base_dir=base_dir, reads=reads)
        except FunctionError as exc:
            raise EvalFailure(exc.message, "function-call") from None

    return call


def _binop(op: str) -> Callable[[nodes.BinExpr], Fn]:
    def build(node: nodes.BinExpr) -> Fn:
        left, right = _compile(node.left), _compile(node.right)
        return lambda s: arith(op, left(s), right(s))

    return build


def _and(node: nodes.And) -> Fn:
    left, right = _compile(node.left), _compile(node.right)

    def run(s: Scope) -> Any:
        a = left(s)
        if a is UNKNOWN:
            return UNKNOWN
        if type(a) is Secret:
            return as_secret(right(s)) if truthy(a.reveal()) else a
        return right(s) if truthy(a) else a

    return run


def _or(node: nodes.Or) -> Fn:
    left, right = _compile(node.left), _compile(node.right)

    def run(s: Scope) -> Any:
        a = left(s)
        if a is UNKNOWN:
            return UNKNOWN
        if type(a) is Secret:
            return a if truthy(a.reveal()) else as_secret(right(s))
        return a if truthy(a) else right(s)

    return run


def _not(node: nodes.Not) -> Fn:
    inner = _compile(node.node)

    def run(s: Scope) -> Any:
        v = inner(s)
        if v is UNKNOWN:
            return UNKNOWN
        if type(v) is Secret:
            return Secret(not truthy(v.reveal()))
        return not truthy(v)

    return run


def _unary(op: str) -> Callable[[nodes.UnaryExpr], Fn]:
    def build(node: nodes.UnaryExpr) -> Fn:
        inner = _compile(node.node)
        return lambda s: negate(op, inner(s))

    return build


_COMPARE_OPS = {"eq": "==", "ne": "!=", "lt": "<", "gt": ">", "lteq": "<=", "gteq": ">="}
_COMPARE_OPS.update({"in": "in", "notin": "not in"})


def _compare(node: nodes.Compare) -> Fn:
    first = _compile(node.expr)
    ops = [(_COMPARE_OPS[o.op], _compile(o.expr)) for o in node.ops]

    def run(s: Scope) -> Any:
        left, secret, unknown = first(s), False, False
        for op, fn in ops:
            right = fn(s)
            r = compare(op, left, right)
            if r is UNKNOWN:
                unknown = True
            elif type(r) is Secret:
                secret = True
                if not r.reveal():
                    return Secret(False)
            elif not r:
                return Secret(False) if secret else False
            left = right
        if unknown:
            return UNKNOWN
        return Secret(True) if secret else True

    return run


def _cond(node: nodes.CondExpr) -> Fn:
    test, yes = _compile(node.test), _compile(node.expr1)
    no = _compile(node.expr2) if node.expr2 is not None else (lambda s: None)

    def run(s: Scope) -> Any:
        t = test(s)
        if t is UNKNOWN:
            return UNKNOWN
        if type(t) is Secret:
            return as_secret(yes(s) if truthy(t.reveal()) else no(s))
        return yes(s) if truthy(t) else no(s)

    return run


def _concat(node: nodes.Concat) -> Fn:
    parts = [_compile(n) for n in node.nodes]
    return lambda s: join_text([p(s) for p in parts])


def _list(node: nodes.List | nodes.Tuple) -> Fn:
    items = [_compile(n) for n in node.items]
    return lambda s: [f(s) for f in items]


def _dict(node: nodes.Dict) -> Fn:
    pairs = [(_compile(p.key), _compile(p.value)) for p in node.items]

    def run(s: Scope) -> Any:
        out: dict[Any, Any] = {}
        for k, v in pairs:
            key = k(s)
            if key is UNKNOWN:
                return UNKNOWN
            if type(key) is Secret:
                raise EvalFailure("a map key cannot be sensitive")
            if type(key) not in (str, int):
                raise EvalFailure(f"map keys must be strings, got {type_name(key)}")
            out[key] = v(s)
        return out

    return run


def _filter(node: nodes.Filter) -> Fn:
    fn = FUNCTIONS.get(node.name)
    hint = f"{fn.name}(...)" if fn else "a function such as upper(x)"
    raise Unsupported(f'filters ("| {node.name}") are not supported; call {hint} instead')


def _test(node: nodes.Test) -> Fn:
    raise Unsupported(f'tests ("is {node.name}") are not supported; compare instead: x == null')


_HANDLERS: dict[type[nodes.Node], Callable[[Any], Fn]] = {
    nodes.Const: _const,
    nodes.Name: _name,
    nodes.Getattr: _chain,
    nodes.Getitem: _lookup_or_slice,
    nodes.Call: _call,
    nodes.Add: _binop("+"),
    nodes.Sub: _binop("-"),
    nodes.Mul: _binop("*"),
    nodes.Div: _binop("/"),
    nodes.FloorDiv: _binop("//"),
    nodes.Mod: _binop("%"),
    nodes.Pow: _binop("**"),
    nodes.And: _and,
    nodes.Or: _or,
    nodes.Not: _not,
    nodes.Neg: _unary("-"),
    nodes.Pos: _unary("+"),
    nodes.Compare: _compare,
    nodes.CondExpr: _cond,
    nodes.Concat: _concat,
    nodes.List: _list,
    nodes.Tuple: _list,
    nodes.Dict: _dict,
    nodes.Filter: _filter,
    nodes.Test: _test,
}
