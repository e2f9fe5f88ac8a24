"""Expression functions that read files, encode and decode, hash, and compute networks.

``file()`` and ``templatefile()`` are the only functions of the expression
library that do I/O, and they only read. Templates render in Jinja2's
sandbox with ``StrictUndefined``: a missing variable is an error that names
the template file and line. Nothing here evaluates Python code.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
import os
import types
from typing import Any

import jinja2
import yaml
from jinja2.sandbox import SandboxedEnvironment

from kplan.config.functions_base import (
    FunctionError,
    to_json,
    want_int,
    want_map,
    want_str,
)

__all__ = [
    "fn_base64decode",
    "fn_base64encode",
    "fn_cidrhost",
    "fn_cidrsubnet",
    "fn_file",
    "fn_jsondecode",
    "fn_sha256",
    "fn_templatefile",
    "fn_tojson",
    "fn_yamldecode",
    "fn_yamlencode",
    "template_line",
]

MAX_FILE_BYTES = 16 * 1024 * 1024


def _resolve(path: str, base_dir: str | None) -> str:
    if base_dir and not os.path.isabs(path):
        return os.path.join(base_dir, path)
    return path


def fn_file(path: Any, *, base_dir: str | None = None) -> str:
    """file(path): the content of a UTF-8 text file; relative to the module folder."""
    full = _resolve(want_str("file", "path", path), base_dir)
    safe = "file(): cannot read the file (its path is sensitive)"
    try:
        if os.path.getsize(full) > MAX_FILE_BYTES:
            raise FunctionError(f"file(): {full} is larger than 16 MiB", safe)
        with open(full, encoding="utf-8") as fh:
            return fh.read()
    except OSError as exc:
        raise FunctionError(f"file(): cannot read {full}: {exc.strerror}", safe) from None
    except UnicodeDecodeError:
        raise FunctionError(f"file(): {full} is not UTF-8 text", safe) from None


_TEMPLATE_ENVS: dict[str, SandboxedEnvironment] = {}


def _template_env(directory: str) -> SandboxedEnvironment:
    env = _TEMPLATE_ENVS.get(directory)
    if env is None:
        env = SandboxedEnvironment(
            loader=jinja2.FileSystemLoader(directory),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            autoescape=False,
        )
        _TEMPLATE_ENVS[directory] = env
    return env


def template_line(exc: BaseException, filename: str) -> int | None:
    """The template line an exception was raised on, from Jinja's rewritten traceback."""
    line = getattr(exc, "lineno", None)
    if isinstance(line, int):
        return line
    tb: types.TracebackType | None = exc.__traceback__
    found: int | None = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            found = tb.tb_lineno
        tb = tb.tb_next
    return found


def fn_templatefile(path: Any, variables: Any, *, base_dir: str | None = None) -> str:
    """templatefile(path, vars): render a Jinja2 template file in the sandbox.

    Undefined variables are errors. The expression functions are available
    as template globals; Jinja's own filters work too.
    """
    from kplan.config.functions import template_globals  # the registry imports this module

    full = os.path.abspath(_resolve(want_str("templatefile", "path", path), base_dir))
    context = want_map("templatefile", "vars", variables)
    env = _template_env(os.path.dirname(full))
    try:
        template = env.get_template(os.path.basename(full))
        return template.render({**template_globals(), **context})
    except jinja2.TemplateNotFound:
        msg = f"templatefile(): template {full} not found"
    except jinja2.TemplateSyntaxError as exc:
        msg = f"templatefile(): {full}:{exc.lineno}: syntax error: {exc.message}"
    except (jinja2.TemplateError, FunctionError) as exc:
        line = template_line(exc, full)
        text = exc.message if isinstance(exc, FunctionError) else str(exc)
        msg = f"templatefile(): {full}:{line}: {text}"
    except RecursionError:
        msg = f"templatefile(): {full}: recursion too deep"
    except Exception as exc:  # a template error from Python code, e.g. int("x")
        line = template_line(exc, full)
        msg = f"templatefile(): {full}:{line}: {type(exc).__name__}: {exc}"
    safe = "templatefile(): the template failed to render (its inputs are sensitive)"
    raise FunctionError(msg, safe)


def fn_base64encode(value: Any) -> str:
    """base64encode(str): the Base64 encoding of a string's UTF-8 bytes."""
    return base64.b64encode(want_str("base64encode", "value", value).encode()).decode("ascii")


def fn_base64decode(value: Any) -> str:
    """base64decode(str): decode Base64 to a UTF-8 string."""
    text = want_str("base64decode", "value", value)
    try:
        return base64.b64decode(text, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise FunctionError(
            "base64decode(): the string is not valid Base64 of UTF-8 text"
        ) from None


def fn_sha256(value: Any) -> str:
    """sha256(str): the hex SHA-256 digest of a string's UTF-8 bytes."""
    return hashlib.sha256(want_str("sha256", "value", value).encode()).hexdigest()


def fn_tojson(value: Any) -> str:
    """tojson(value) / jsonencode(value): compact JSON, keys in written order."""
    return to_json(value)


def fn_jsondecode(value: Any) -> Any:
    """jsondecode(str): parse JSON."""
    text = want_str("jsondecode", "value", value)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise FunctionError(f"jsondecode(): invalid JSON at {where}: {exc.msg}") from None
    except RecursionError:
        raise FunctionError("jsondecode(): JSON nested too deeply") from None


def fn_yamlencode(value: Any) -> str:
    """yamlencode(value): block-style YAML, keys in written order."""
    try:
        return yaml.safe_dump(value, sort_keys=False, allow_unicode=True, default_flow_style=False)
    except yaml.YAMLError:
        raise FunctionError("yamlencode(): value cannot be encoded as YAML") from None


def fn_yamldecode(value: Any) -> Any:
    """yamldecode(str): parse one YAML document (safe loader: plain data only)."""
    text = want_str("yamldecode", "value", value)
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise FunctionError(f"yamldecode(): invalid YAML{where}: {exc.problem}") from None
    except (yaml.YAMLError, RecursionError):
        raise FunctionError("yamldecode(): invalid YAML") from None


def _network(fn: str, prefix: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    text = want_str(fn, "prefix", prefix)
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise FunctionError(
            f'{fn}(): prefix must be an address prefix like "10.0.0.0/24"',
        ) from None


def fn_cidrhost(prefix: Any, hostnum: Any) -> str:
    """cidrhost(prefix, n): the n-th address in a prefix (negative counts from the end)."""
    net = _network("cidrhost", prefix)
    num = want_int("cidrhost", "hostnum", hostnum)
    if num < 0:
        num += net.num_addresses
    if not 0 <= num < net.num_addresses:
        raise FunctionError(
            f"cidrhost(): host number out of range for a prefix with {net.num_addresses} addresses"
        )
    return str(net.network_address + num)


def fn_cidrsubnet(prefix: Any, newbits: Any, netnum: Any) -> str:
    """cidrsubnet(prefix, newbits, netnum): the netnum-th subnet newbits longer than prefix."""
    net = _network("cidrsubnet", prefix)
    bits = want_int("cidrsubnet", "newbits", newbits)
    num = want_int("cidrsubnet", "netnum", netnum)
    new_len = net.prefixlen + bits
    if bits < 0 or new_len > net.max_prefixlen:
        raise FunctionError(
            f"cidrsubnet(): newbits must be between 0 and {net.max_prefixlen - net.prefixlen}"
        )
    if not 0 <= num < 2**bits:
        raise FunctionError(f"cidrsubnet(): netnum must be between 0 and {2**bits - 1}")
    base = int(net.network_address) + (num << (net.max_prefixlen - new_len))
    address = ipaddress.IPv4Address(base) if net.version == 4 else ipaddress.IPv6Address(base)
    return f"{address}/{new_len}"
