"""Values of the root module's variables, from defaults, environment and command line.

Precedence, later wins (as in Terraform): a variable's default, then
``KPLAN_VAR_<name>`` environment variables, then ``-var-file FILE.yaml`` and
``-var name=value`` in the order given on the command line. Strings from the
environment and ``-var`` are converted to the variable's type: ``number``
and ``bool`` from their text ("5", "true"), ``list``/``set``/``map``/
``object`` parsed as YAML flow (``[1, 2]``, ``{a: 1}``); for ``any``, text
starting with ``[`` or ``{`` is parsed, anything else stays a string.
Sensitive values come back wrapped in :class:`~kplan.values.Secret`.
Validation conditions are evaluated later, by the evaluator, not here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from kplan.config.model import MISSING, Variable
from kplan.config.types import (
    TypeConversionError,
    TypeParseError,
    TypeSpec,
    convert,
    parse_type,
)
from kplan.config.yamlpos import parse_yaml, read_yaml
from kplan.diagnostics import Diagnostics, SourcePos
from kplan.values import Secret

__all__ = ["ENV_PREFIX", "resolve_variables"]

ENV_PREFIX = "KPLAN_VAR_"


def _needs_parsing(text: str, spec: TypeSpec) -> bool:
    """Whether a string from the command line or the environment is read as YAML."""
    if spec.kind in ("string", "number", "bool"):
        return False  # convert() turns "5" into 5 and "true" into True
    return spec.kind != "any" or text.lstrip().startswith(("[", "{"))


class _Resolver:
    def __init__(self, variables: Mapping[str, Variable]) -> None:
        self.variables = variables
        self.diags = Diagnostics()
        self.values: dict[str, Any] = {}
        self.specs: dict[str, TypeSpec] = {}
        for name, var in variables.items():
            try:
                self.specs[name] = parse_type(var.type)
            except TypeParseError as exc:
                self.diags.error(
                    f"variable {name!r} has an invalid type {var.type!r}: {exc}",
                    pos=var.pos,
                    code="invalid-type",
                )
            if var.default is not MISSING:
                self.values[name] = var.default

    def set(self, name: str, value: Any, source: str, pos: SourcePos | None) -> None:
        spec = self.specs.get(name)
        if spec is None:
            return
        if self.variables[name].sensitive and value is not None:
            value = Secret(value)  # converted inside; an error never shows it
        try:
            self.values[name] = convert(value, spec, f"var.{name}")
        except TypeConversionError as exc:
            self.diags.error(
                f"invalid value for variable {name!r} from {source}",
                str(exc),
                pos,
                code="invalid-variable-value",
            )

    def set_text(self, name: str, text: str, source: str) -> None:
        spec = self.specs.get(name)
        if spec is None:
            return
        if not _needs_parsing(text, spec):
            self.set(name, text, source, None)
            return
        doc, diags = parse_yaml(text, source)
        if diags.has_errors:
            problems = "; ".join(d.summary for d in diags.errors)
            self.diags.error(
                f"invalid value for variable {name!r} from {source}",
                f"expected {spec} written as YAML flow (e.g. [1, 2] or {{a: 1}}): {problems}",
                code="invalid-variable-value",
            )
            return
        self.set(name, doc.data, source, None)

    def environ(self, environ: Mapping[str, str]) -> None:
        for key in sorted(environ):
            if key.startswith(ENV_PREFIX) and key[len(ENV_PREFIX) :] in self.variables:
                name = key[len(ENV_PREFIX) :]
                self.set_text(name, environ[key], f"the environment variable {key}")

    def var(self, arg: str) -> None:
        name, sep, text = arg.partition("=")
        name = name.strip()
        if not sep or not name:
            self.diags.error(
                f"invalid -var {arg!r}",
                "expected -var NAME=VALUE, e.g. -var release=zed or -var 'ports=[80, 443]'",
                code="invalid-var-option",
            )
        elif name not in self.variables:
            self.diags.error(
                f"-var {name}: the root module declares no variable {name!r}",
                _declared(self.variables),
                code="undeclared-variable",
            )
        else:
            self.set_text(name, text, f"-var {name}")

    def var_file(self, path: str) -> None:
        doc, diags = read_yaml(path)
        self.diags.extend(diags)
        data = doc.data
        if diags.has_errors or data is None:
            return
        if not isinstance(data, dict):
            self.diags.error(
                f"{path}: a var file is a mapping of NAME: value",
                pos=doc.values.get((), SourcePos(path, 1, 1)),
                code="invalid-var-file",
            )
            return
        for name, value in data.items():
            if name not in self.variables:
                self.diags.warning(
                    f"the root module declares no variable {name!r}; value ignored",
                    _declared(self.variables),
                    doc.keys.get((name,)),
                    code="undeclared-variable",
                )
                continue
            self.set(name, value, os.path.normpath(path), doc.values.get((name,)))

    def finish(self) -> dict[str, Any]:
        for name, var in self.variables.items():
            if name not in self.values and name in self.specs:
                self.diags.error(
                    f"no value for the required variable {name!r}",
                    f"set it with -var {name}=VALUE, in a -var-file FILE.yaml "
                    f"({name}: VALUE), or with the environment variable {ENV_PREFIX}{name}",
                    var.pos,
                    code="missing-variable",
                )
        return {
            name: Secret(value) if self.variables[name].sensitive and value is not None else value
            for name, value in self.values.items()
        }


def _declared(variables: Mapping[str, Variable]) -> str:
    if not variables:
        return "it declares no variables at all"
    return "declared variables: " + ", ".join(sorted(variables))


def resolve_variables(
    variables: Mapping[str, Variable],
    *,
    cli_args: Sequence[tuple[str, str]] = (),
    environ: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], Diagnostics]:
    """The value of every root variable, and the problems found collecting them.

    ``cli_args`` are ``("var", "name=value")`` and ``("var-file", path)`` in
    command-line order; ``environ`` defaults to ``os.environ``. A missing
    required variable, an undeclared ``-var`` and a value of the wrong type
    are errors; an undeclared name in a var file is a warning; an undeclared
    ``KPLAN_VAR_`` variable is ignored.
    """
    resolver = _Resolver(variables)
    resolver.environ(os.environ if environ is None else environ)
    for kind, arg in cli_args:
        if kind == "var":
            resolver.var(arg)
        elif kind == "var-file":
            resolver.var_file(arg)
        else:
            resolver.diags.error(
                f"unknown variable option {kind!r}",
                "expected 'var' or 'var-file'",
                code="invalid-var-option",
            )
    values = resolver.finish()
    return values, resolver.diags
