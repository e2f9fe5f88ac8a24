"""``secret_password``: a random password generated at apply, kept as a Secret.

Attributes: ``length`` (default 32, 1..4096), ``special`` (default false),
``keepers`` (a map; any change regenerates). All three force a replace: a new
password. The computed ``value`` is always a :class:`kplan.values.Secret`;
it is planned UNKNOWN on create and replace and kept otherwise.

The alphabet is ASCII letters and digits, plus ``SPECIAL`` when special is
true: characters that need no quoting in a URL's user-info, an INI/oslo.config
value or a shell word (no ``$ % # @ : / \\`` quotes or spaces). When the length
allows, the password holds at least one character of every class.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Mapping, Sequence
from typing import Any

from kplan.diagnostics import Diagnostic
from kplan.provider_api import ApplyResponse, Attribute, ReadInstance, ReadResponse, ResourceSchema
from kplan.provider_sdk import ResourceType, Target, attr_error, plain
from kplan.values import Secret

__all__ = ["MAX_LENGTH", "SPECIAL", "SecretPassword", "generate", "read_generated"]

SPECIAL = "!*+-.=_~"
MAX_LENGTH = 4096

SCHEMA = ResourceSchema(
    type_name="secret_password",
    description="A random password generated at apply; sensitive everywhere.",
    attributes={
        "length": Attribute(
            "number", optional=True, default=32, force_new=True, description="1..4096 characters"
        ),
        "special": Attribute(
            "bool",
            optional=True,
            default=False,
            force_new=True,
            description=f"also use the characters {SPECIAL}",
        ),
        "keepers": Attribute(
            "map", optional=True, force_new=True, description="any change regenerates the password"
        ),
        "value": Attribute("string", computed=True, sensitive=True, description="the password"),
    },
)


def generate(length: int, special: bool) -> str:
    """A password of ``length`` characters from the ``secrets`` module's CSPRNG."""
    classes = [string.ascii_lowercase, string.ascii_uppercase, string.digits]
    if special:
        classes.append(SPECIAL)
    alphabet = "".join(classes)
    chars = [secrets.choice(c) for c in classes] if length >= len(classes) else []
    chars += [secrets.choice(alphabet) for _ in range(length - len(chars))]
    secrets.SystemRandom().shuffle(chars)
    return "".join(chars)


def read_generated(instances: Sequence[ReadInstance]) -> ReadResponse:
    """A generated secret lives only in the state: the prior state, its value surely Secret."""
    states: dict[str, Mapping[str, Any] | None] = {}
    for inst in instances:
        state = dict(inst.state)
        if state.get("value") is not None and not isinstance(state["value"], Secret):
            state["value"] = Secret(state["value"])
        states[inst.address] = state
    return ReadResponse(states=states)


def _check_length(length: Any) -> Diagnostic | None:
    if not isinstance(length, int | float) or isinstance(length, bool):
        return None  # UNKNOWN, absent or mistyped: the generic check speaks
    if length != int(length) or not 1 <= length <= MAX_LENGTH:
        return attr_error(
            "length",
            f"length must be a whole number from 1 to {MAX_LENGTH}",
            f"got {length}",
            code="invalid-length",
        )
    return None


class SecretPassword(ResourceType[Target]):
    schema = SCHEMA

    def check(self, config: Mapping[str, Any]) -> list[Diagnostic]:
        problem = _check_length(plain(config.get("length")))
        return [problem] if problem is not None else []

    def read(self, instances: Sequence[ReadInstance]) -> ReadResponse:
        return read_generated(instances)

    def create_at(self, t: Target, planned: Mapping[str, Any]) -> ApplyResponse:
        length = plain(planned.get("length"))
        length = SCHEMA.attributes["length"].default if length is None else length
        problem = _check_length(length)
        if problem is None and not isinstance(length, int | float):
            problem = attr_error("length", "length is not a number at apply", code="invalid-length")
        if problem is not None:
            return ApplyResponse(None, [problem])
        special = bool(plain(planned.get("special")))
        state = dict(planned)
        state["value"] = Secret(generate(int(length), special))
        return ApplyResponse(state)
