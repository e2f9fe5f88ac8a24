"""Addresses of modules and resources.

An address names one thing in a configuration or a state:

    module.keystone["ctl1"].local_file.conf[0]
    ^ module path (zero or more steps)    ^ type.name[key]

Addresses are immutable values; ``parse()`` and ``str()`` round-trip exactly.
A key is either an ``int`` (from ``count``) or a ``str`` (from ``for_each``);
string keys are written with JSON quoting. This module imports nothing of
kplan: every other module may import it.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field

__all__ = [
    "AddressError",
    "Key",
    "ModuleAddr",
    "ModuleStep",
    "ResourceAddr",
    "ResourceConfigAddr",
    "Target",
    "TriggerRef",
    "format_key",
    "parse",
    "parse_module",
    "parse_resource",
]

Key = int | str | None

_NAME = r"[A-Za-z_][A-Za-z0-9_-]*"
_KEY = r'\[(?:(?P<int>\d+)|(?P<str>"(?:[^"\\]|\\.)*"))\]'
_STEP = re.compile(rf"(?P<name>{_NAME})(?:{_KEY})?")


class AddressError(ValueError):
    """A string that is not a valid address."""


_PLAIN_KEY = re.compile(r'[^"\\\x00-\x1f\x7f]*')


def format_key(key: Key) -> str:
    if key is None:
        return ""
    if isinstance(key, int):
        return f"[{key}]"
    if _PLAIN_KEY.fullmatch(key):  # nothing to escape: the common case, and a hot path
        return f'["{key}"]'
    return "[" + json.dumps(key, ensure_ascii=False) + "]"


@dataclass(frozen=True, slots=True, order=True)
class ModuleStep:
    name: str
    key: Key = None

    def __str__(self) -> str:
        return f"module.{self.name}{format_key(self.key)}"


@dataclass(frozen=True, slots=True)
class ModuleAddr:
    """A module instance: ``module.a["x"].module.b``; the root module has no steps."""

    steps: tuple[ModuleStep, ...] = ()
    # Every instance address in the module asks for str() and hash() (a block's address
    # holds its module): each made once, on first use.
    _text: str | None = field(default=None, init=False, repr=False, compare=False, hash=False)
    _hash: int | None = field(default=None, init=False, repr=False, compare=False, hash=False)
    # Sorting a plan's changes asks every instance's module for it.
    _sort: tuple[tuple[str, int, str], ...] | None = field(
        default=None, init=False, repr=False, compare=False, hash=False
    )

    def __hash__(self) -> int:
        h = self._hash
        if h is None:
            h = hash(self.steps)
            object.__setattr__(self, "_hash", h)
        return h

    @property
    def is_root(self) -> bool:
        return not self.steps

    def child(self, name: str, key: Key = None) -> ModuleAddr:
        return ModuleAddr((*self.steps, ModuleStep(name, key)))

    def resource(self, type_: str, name: str, key: Key = None) -> ResourceAddr:
        return ResourceAddr(self, type_, name, key)

    def is_within(self, other: ModuleAddr) -> bool:
        """True when this module is ``other`` or nested inside it."""
        n = len(other.steps)
        return self.steps[:n] == other.steps

    def __str__(self) -> str:
        text = self._text
        if text is None:
            text = ".".join(str(s) for s in self.steps)
            object.__setattr__(self, "_text", text)
        return text

    def sort_key(self) -> tuple[tuple[str, int, str], ...]:
        key = self._sort
        if key is None:
            key = tuple((s.name, *_key_sort(s.key)) for s in self.steps)
            object.__setattr__(self, "_sort", key)
        return key


ROOT = ModuleAddr()


def _key_sort(key: Key) -> tuple[int, str]:
    # None < int keys (numerically) < str keys: a stable, human order.
    if key is None:
        return (-1, "")
    if isinstance(key, int):
        return (key, "")
    return (1 << 62, key)


@dataclass(frozen=True, slots=True)
class ResourceConfigAddr:
    """A resource block before expansion: ``module.a.local_file.x`` (no instance key)."""

    module: ModuleAddr
    type: str
    name: str

    def instance(self, key: Key = None) -> ResourceAddr:
        return ResourceAddr(self.module, self.type, self.name, key)

    def __str__(self) -> str:
        local = f"{self.type}.{self.name}"
        return f"{self.module}.{local}" if self.module.steps else local


@dataclass(frozen=True, slots=True)
class ResourceAddr:
    """One resource instance: ``[module path.]TYPE.NAME[KEY]``."""

    module: ModuleAddr
    type: str
    name: str
    key: Key = None
    # str() and hash() are asked for often (state keys, sets, plans): computed once.
    _text: str = field(default="", init=False, repr=False, compare=False, hash=False)
    _hash: int = field(default=0, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        local = f"{self.type}.{self.name}{format_key(self.key)}"
        object.__setattr__(self, "_text", f"{self.module}.{local}" if self.module.steps else local)
        object.__setattr__(self, "_hash", hash(self._text))

    def __hash__(self) -> int:
        return self._hash

    @property
    def config(self) -> ResourceConfigAddr:
        return ResourceConfigAddr(self.module, self.type, self.name)

    @property
    def local(self) -> str:
        """The address inside its module: ``TYPE.NAME[KEY]``."""
        return f"{self.type}.{self.name}{format_key(self.key)}"

    def __str__(self) -> str:
        return self._text

    def sort_key(self) -> tuple[object, ...]:
        return (self.module.sort_key(), self.type, self.name, _key_sort(self.key))


def _parse_steps(text: str) -> list[tuple[str, Key]]:
    pos = 0
    out: list[tuple[str, Key]] = []
    while True:
        m = _STEP.match(text, pos)
        if not m:
            raise AddressError(f"invalid address {text!r}: expected a name at character {pos + 1}")
        key: Key = None
        if m.group("int") is not None:
            key = int(m.group("int"))
        elif m.group("str") is not None:
            key = json.loads(m.group("str"))
        out.append((m.group("name"), key))
        pos = m.end()
        if pos == len(text):
            return out
        if text[pos] != ".":
            raise AddressError(
                f"invalid address {text!r}: expected '.' or '[' at character {pos + 1}"
            )
        pos += 1


def _split(text: str) -> tuple[ModuleAddr, list[tuple[str, Key]]]:
    parts = _parse_steps(text.strip())
    steps: list[ModuleStep] = []
    i = 0
    while i < len(parts) and parts[i][0] == "module" and parts[i][1] is None:
        if i + 1 >= len(parts):
            raise AddressError(f"invalid address {text!r}: 'module' must be followed by a name")
        name, key = parts[i + 1]
        steps.append(ModuleStep(name, key))
        i += 2
    return ModuleAddr(tuple(steps)), parts[i:]


def parse(text: str) -> ModuleAddr | ResourceConfigAddr | ResourceAddr:
    """Parse a module address, a resource block address or an instance address.

    ``local_file.x`` (no key) parses as a :class:`ResourceConfigAddr`, which
    as a target matches every instance of the block.
    """
    module, rest = _split(text)
    if not rest:
        if module.is_root:
            raise AddressError("an empty address")
        return module
    if len(rest) != 2 or rest[0][1] is not None:
        raise AddressError(f"invalid address {text!r}: expected [module.NAME[KEY].]TYPE.NAME[KEY]")
    (type_, _), (name, key) = rest
    if key is None:
        return ResourceConfigAddr(module, type_, name)
    return ResourceAddr(module, type_, name, key)


def parse_resource(text: str) -> ResourceAddr:
    """Parse the address of one resource instance (a keyless block address is key None)."""
    addr = parse(text)
    if isinstance(addr, ResourceConfigAddr):
        return addr.instance(None)
    if isinstance(addr, ResourceAddr):
        return addr
    raise AddressError(f"{text!r} is a module address, not a resource address")


def parse_module(text: str) -> ModuleAddr:
    if text.strip() == "":
        return ROOT
    addr = parse(text)
    if not isinstance(addr, ModuleAddr):
        raise AddressError(f"{text!r} is a resource address, not a module address")
    return addr


@dataclass(frozen=True, slots=True)
class Target:
    """A ``-target`` / ``-exclude`` selector: an address or a prefix of one."""

    addr: ModuleAddr | ResourceConfigAddr | ResourceAddr

    @classmethod
    def parse(cls, text: str) -> Target:
        return cls(parse(text))

    def matches(self, res: ResourceAddr) -> bool:
        """A step written without a key (``module.a``) stands for all of its instances."""
        a = self.addr
        if isinstance(a, ModuleAddr):
            return _steps_match(a.steps, res.module.steps, prefix=True)
        if not _steps_match(a.module.steps, res.module.steps, prefix=False):
            return False
        if (a.type, a.name) != (res.type, res.name):
            return False
        return isinstance(a, ResourceConfigAddr) or a.key == res.key

    def __str__(self) -> str:
        return str(self.addr)


def _steps_match(
    want: tuple[ModuleStep, ...], have: tuple[ModuleStep, ...], *, prefix: bool
) -> bool:
    if len(have) < len(want) or (not prefix and len(have) != len(want)):
        return False
    return all(
        w.name == h.name and (w.key is None or w.key == h.key)
        for w, h in zip(want, have, strict=False)
    )


# -- triggers ------------------------------------------------------------------

_TRIGGER_TYPE = re.compile(r"[a-z_][a-z0-9_]*")  # as a resource key's TYPE
_TRIGGER_NAME = re.compile(_NAME)
_TRIGGER_ATTR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# First words that name something other than a resource of this module.
_NOT_RESOURCES = frozenset(
    {"var", "local", "module", "each", "count", "path", "host", "hosts", "groups"}
)


@dataclass(frozen=True, slots=True)
class TriggerRef:
    """One ``restart_on`` / ``replace_on`` entry: a resource block of the *same* module.

    The grammar (``KEY`` is an expression, kept as written: ``each.key``,
    ``count.index``, ``"ctl1"``, ``0``; one ``${...}`` around the whole entry is
    allowed and dropped)::

        TYPE.NAME               any instance of the block changes
        TYPE.NAME[KEY]          that instance changes
        TYPE.NAME.ATTR          any instance changes and its ATTR differs
        TYPE.NAME[KEY].ATTR     that instance changes and its ATTR differs

    ``module.X.TYPE.NAME`` is refused: a module's resources are private to it
    (as in Terraform), and a trigger cannot wait for a change inside another
    module's instances. ``parse()`` and ``str()`` round-trip.
    """

    type: str
    name: str
    key: str | None = None
    attr: str | None = None

    FORMS = "TYPE.NAME, TYPE.NAME[KEY], TYPE.NAME.ATTR or TYPE.NAME[KEY].ATTR"

    @classmethod
    def parse(cls, text: str) -> TriggerRef:
        """Parse one entry; raise :class:`AddressError` saying what is wrong."""
        return _parse_trigger(text)

    @property
    def block(self) -> str:
        """``TYPE.NAME``: the resource block it names."""
        return f"{self.type}.{self.name}"

    def __str__(self) -> str:
        key = f"[{self.key}]" if self.key is not None else ""
        attr = f".{self.attr}" if self.attr is not None else ""
        return f"{self.type}.{self.name}{key}{attr}"


@functools.lru_cache(maxsize=4096)  # one parse per distinct entry, however many instances
def _parse_trigger(text: str) -> TriggerRef:
    s = text.strip()
    if s.startswith("${") and s.endswith("}"):
        s = s[2:-1].strip()
    if not s:
        raise AddressError("an empty trigger")
    head = s.split(".", 1)[0].split("[", 1)[0]
    if head == "module":
        raise AddressError(
            f"{s!r} names a resource inside a module: a trigger names a resource of the "
            "same module (a module's resources are private to it); put the trigger inside "
            "that module, or use depends_on for order only"
        )
    if head in _NOT_RESOURCES:
        raise AddressError(f"{s!r} is not a resource: a trigger names a resource block")
    type_, dot, rest = s.partition(".")
    if not dot or not _TRIGGER_TYPE.fullmatch(type_):
        raise AddressError(f"{s!r}: expected TYPE.NAME, with TYPE of a-z, 0-9 and _")
    m = _TRIGGER_NAME.match(rest)
    if m is None:
        raise AddressError(f"{s!r}: expected a resource NAME after {type_ + '.'!r}")
    name, pos = m.group(), m.end()
    key: str | None = None
    if pos < len(rest) and rest[pos] == "[":
        end = _closing_bracket(rest, pos)
        if end < 0:
            raise AddressError(f"{s!r}: the [ of the KEY is not closed")
        key = rest[pos + 1 : end].strip()
        if not key:
            raise AddressError(f"{s!r}: an empty KEY")
        pos = end + 1
    attr: str | None = None
    if pos < len(rest):
        if rest[pos] != "." or not _TRIGGER_ATTR.fullmatch(rest[pos + 1 :]):
            raise AddressError(
                f"{s!r}: expected at most one .ATTR (a top-level attribute name) "
                f"after {s[: len(type_) + 1 + pos]!r}"
            )
        attr = rest[pos + 1 :]
    return TriggerRef(type_, name, key, attr)


def _closing_bracket(text: str, start: int) -> int:
    """The index of the ``]`` closing the ``[`` at ``start`` (nesting and quotes
    respected), or -1."""
    depth, quote, i = 0, "", start
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1
