"""The mariadb provider: ``mariadb_database``, ``mariadb_user``, ``mariadb_grant``.

Registered under the ``kplan.providers`` entry point as ``mariadb``. The objects
live inside a MariaDB server that runs in a container on an inventory host
(``host`` on the resource, ``container`` default ``mariadb``). The provider
reaches it with ``docker exec`` of the container's own ``mariadb`` client, as
root over the server's unix socket, through the host's Docker API
(``conn.docker()``): no password for the provider, no port opened wider.

What must hold here: a refresh costs one exec per host (per container) for all
instances of a type, however many; the SQL travels in the exec's environment,
never in a process's arguments; a password reaches the server only as its
hash and reaches no diagnostic or log; a name MariaDB cannot store is refused
at validate, naming the attribute. Never here: another provider's modules.
"""

from __future__ import annotations

from kplan.provider_api import ConfigureRequest
from kplan.provider_sdk import ContainerHosts, TypeDispatcher

from ._client import SERVICE
from .database import MariaDBDatabase
from .grant import MariaDBGrant
from .user import MariaDBUser

__all__ = ["MariaDBProvider", "provider"]


class MariaDBProvider(TypeDispatcher):
    name = "mariadb"

    def __init__(self) -> None:
        self.hosts = ContainerHosts(SERVICE)
        super().__init__(
            [MariaDBDatabase(self.hosts), MariaDBUser(self.hosts), MariaDBGrant(self.hosts)]
        )

    def configure(self, req: ConfigureRequest) -> None:
        self.hosts.configure(req)


#: The entry point's object (``kplan_providers.mariadb:provider``).
provider = MariaDBProvider()
