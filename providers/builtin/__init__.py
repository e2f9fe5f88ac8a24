"""The built-in provider: ``local_file``, the secrets, ``null_resource``, ``time_sleep``.

Registered under the ``kplan.providers`` entry point as ``builtin`` (see
pyproject.toml), exactly as a third-party provider would be; the engine never
imports this package by name. :class:`BuiltinProvider` is a thin dispatcher:
each resource type lives in its own module as a
:class:`~kplan.provider_sdk.ResourceType`, and every request is routed
to the type it names. A request for a type this provider does not serve gets
an error diagnostic, never an exception. The secrets are
``secret_password`` and ``secret_key``.
"""

from __future__ import annotations

from kplan.provider_sdk import TypeDispatcher

from .local_file import LocalFile
from .null_resource import NullResource
from .secret_key import SecretKey
from .secret_password import SecretPassword
from .time_sleep import TimeSleep

__all__ = ["BuiltinProvider", "provider"]


class BuiltinProvider(TypeDispatcher):
    name = "builtin"

    def __init__(self) -> None:
        super().__init__([LocalFile(), SecretPassword(), SecretKey(), NullResource(), TimeSleep()])


#: The entry point's object (``kplan_providers.builtin:provider``).
provider = BuiltinProvider()
