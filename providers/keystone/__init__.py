"""The keystone provider: Keystone's own objects as resources with refresh.

Registered under the ``kplan.providers`` entry point as ``keystone``. Types:
``keystone_project``, ``keystone_role``, ``keystone_user``,
``keystone_role_assignment``, ``keystone_service``, ``keystone_endpoint``.
The machine running kplan talks HTTP to Keystone's v3 API at each resource's
``auth.auth_url`` through keystoneauth1 (as Terraform's OpenStack provider
does): no host, no SSH. Every type takes ``auth``, a ``connection``
attribute: a new admin password or auth URL alone is no change.

What must hold here: a refresh costs a constant number of API calls per type
and login (one token, one list), plus one token request per enabled user to
check its password; an object deleted by hand reads as gone; Keystone not
reachable is a diagnostic naming the auth URL and the resources; a password
never reaches a diagnostic, a log or an exception. Docs: docs/providers/keystone.md.
"""

from __future__ import annotations

from kplan.provider_api import ConfigureRequest
from kplan.provider_sdk import TypeDispatcher

from ._client import Clients
from .assignment import KeystoneRoleAssignment
from .catalog import KeystoneEndpoint, KeystoneService
from .identity import KeystoneProject, KeystoneRole, KeystoneUser

__all__ = ["KeystoneProvider", "provider"]


class KeystoneProvider(TypeDispatcher):
    name = "keystone"

    def __init__(self) -> None:
        self.clients = Clients()
        super().__init__(
            [
                KeystoneProject(self.clients),
                KeystoneRole(self.clients),
                KeystoneUser(self.clients),
                KeystoneRoleAssignment(self.clients),
                KeystoneService(self.clients),
                KeystoneEndpoint(self.clients),
            ]
        )

    def configure(self, req: ConfigureRequest) -> None:
        """A new run: new tokens (the logins may have changed since)."""
        self.clients.reset()


#: The entry point's object (``kplan_providers.keystone:provider``).
provider = KeystoneProvider()
