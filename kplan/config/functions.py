"""The function library of kplan expressions: ``${ join(",", var.hosts) }``.

:data:`FUNCTIONS` maps each name to a :class:`Function`; :func:`call_function`
is the one way to call one. It checks the argument count, then applies the
rules for special values before the implementation sees them:

- an UNKNOWN argument makes the result UNKNOWN (structural functions such as
  ``length`` or ``concat`` still work on lists that merely *contain* UNKNOWN);
- Secret arguments are revealed for the call and the result is wrapped in
  :class:`~kplan.values.Secret`; an error message then hides argument values.

Implementations live in ``functions_std`` (strings, numbers, collections),
``functions_io`` (files, templates, encodings, networks) and ``overrides``
(``config_overrides``, which also records what it looked for). Never here:
``eval``, writes, network access, or anything non-deterministic (no uuid(),
no timestamp()). Usable without the evaluator: ``call_function("upper", ["a"])``.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kplan.config import functions_io as io
from kplan.config import functions_std as std
from kplan.config import overrides
from kplan.config.functions_base import HAS_SECRET, HAS_UNKNOWN, FunctionError, as_secret, special
from kplan.values import UNKNOWN, Secret, reveal

__all__ = ["FUNCTIONS", "Function", "FunctionError", "call_function", "template_globals"]


@dataclass(frozen=True, slots=True)
class Function:
    name: str
    impl: Callable[..., Any]
    min_args: int
    max_args: int | None  # None: any number
    # Structural functions get lists/maps with UNKNOWN or Secret elements as they are.
    structural: bool
    # Takes base_dir= (the module folder) to resolve relative paths.
    wants_base_dir: bool
    params: tuple[str, ...]
    # Takes reads= (the run's OverrideReads) to record the override files it looked for.
    wants_reads: bool = False

    @property
    def usage(self) -> str:
        return f"{self.name}({', '.join(self.params)})"

    @property
    def doc(self) -> str:
        return inspect.getdoc(self.impl) or ""


def _make(name: str, impl: Callable[..., Any], structural: bool = False) -> Function:
    lo, hi, wants_base_dir, wants_reads, params = 0, 0, False, False, []
    for p in inspect.signature(impl).parameters.values():
        if p.kind is p.KEYWORD_ONLY:
            wants_base_dir = wants_base_dir or p.name == "base_dir"
            wants_reads = wants_reads or p.name == "reads"
        elif p.kind is p.VAR_POSITIONAL:
            hi = -1
            params.append(f"{p.name}...")
        elif p.default is p.empty:
            lo, hi = lo + 1, hi + 1
            params.append(p.name)
        else:
            hi += 1
            params.append(f"{p.name}?")
    return Function(
        name,
        impl,
        lo,
        None if hi < 0 else hi,
        structural,
        wants_base_dir,
        tuple(params),
        wants_reads,
    )


_STRUCTURAL: dict[str, Callable[..., Any]] = {
    "length": std.fn_length,
    "keys": std.fn_keys,
    "values": std.fn_values,
    "lookup": std.fn_lookup,
    "merge": std.fn_merge,
    "concat": std.fn_concat,
    "element": std.fn_element,
}
_STD_NAMES = (
    "format", "join", "split", "replace", "upper", "lower", "trim", "trimspace",
    "startswith", "endswith", "substr", "indent", "tostring", "tonumber", "min", "max", "abs",
    "range", "contains", "flatten", "distinct", "sort", "toset", "zipmap", "coalesce",
    "formatlist", "pick", "pluck",
)  # fmt: skip
_IO_NAMES = (
    "file", "templatefile", "base64encode", "base64decode", "sha256", "tojson", "jsondecode",
    "yamlencode", "yamldecode", "cidrhost", "cidrsubnet",
)  # fmt: skip
_PLAIN: dict[str, Callable[..., Any]] = {
    **{n: getattr(std, f"fn_{n}") for n in _STD_NAMES},
    **{n: getattr(io, f"fn_{n}") for n in _IO_NAMES},
    "jsonencode": io.fn_tojson,
    "config_overrides": overrides.fn_config_overrides,
}

#: Every function an expression may call, by name.
FUNCTIONS: Mapping[str, Function] = dict(
    sorted(
        [(n, _make(n, f, structural=True)) for n, f in _STRUCTURAL.items()]
        + [(n, _make(n, f)) for n, f in _PLAIN.items()]
    )
)


def _arity_error(fn: Function, got: int) -> FunctionError:
    if fn.max_args is None:
        want = f"at least {fn.min_args}"
    elif fn.min_args == fn.max_args:
        want = str(fn.min_args)
    else:
        want = f"{fn.min_args} to {fn.max_args}"
    plural = "" if want.endswith(" 1") or want == "1" else "s"
    return FunctionError(f"{fn.usage} takes {want} argument{plural}, got {got}")


def unknown_function(name: str) -> FunctionError:
    close = difflib.get_close_matches(name, FUNCTIONS, n=1)
    hint = f'; did you mean "{close[0]}"?' if close else ""
    return FunctionError(f'unknown function "{name}"{hint}')


def call_function(
    name: str,
    args: Sequence[Any],
    *,
    base_dir: str | None = None,
    reads: overrides.OverrideReads | None = None,
) -> Any:
    """Call a library function with the UNKNOWN and Secret rules applied.

    Raises :class:`FunctionError` for an unknown name, a wrong argument
    count, or arguments the function cannot use.
    """
    fn = FUNCTIONS.get(name)
    if fn is None:
        raise unknown_function(name)
    if len(args) < fn.min_args or (fn.max_args is not None and len(args) > fn.max_args):
        raise _arity_error(fn, len(args))
    if any(a is UNKNOWN for a in args):
        if fn.wants_reads and reads is not None:
            reads.not_known_yet()
        return UNKNOWN
    secret = False
    if fn.structural:
        if any(isinstance(a, Secret) for a in args):
            secret = True
            args = [a.reveal() if isinstance(a, Secret) else a for a in args]
    else:
        flags = 0
        for a in args:
            flags |= special(a)
        if flags & HAS_UNKNOWN:
            if fn.wants_reads and reads is not None:
                reads.not_known_yet()
            return UNKNOWN
        if flags & HAS_SECRET:
            secret = True
            args = [reveal(a) for a in args]
    try:
        if fn.wants_base_dir:
            result = fn.impl(*args, base_dir=base_dir)
        elif fn.wants_reads:
            result = fn.impl(*args, reads=reads)
        else:
            result = fn.impl(*args)
    except FunctionError as exc:
        if secret:
            raise FunctionError(exc.safe_message) from None
        raise
    except RecursionError:
        raise FunctionError(f"{name}(): value nested too deeply") from None
    except (MemoryError, OverflowError):
        raise FunctionError(f"{name}(): result too large") from None
    return as_secret(result) if secret else result


_GLOBALS: dict[str, Callable[..., Any]] = {}


def template_globals() -> dict[str, Callable[..., Any]]:
    """The functions as plain callables, for Jinja2 templates rendered by templatefile()."""
    if not _GLOBALS:
        for name in FUNCTIONS:
            _GLOBALS[name] = _bind(name)
    return _GLOBALS


def _bind(name: str) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        return call_function(name, args)

    call.__name__ = name
    return call
