"""The rabbitmq provider: ``rabbitmq_vhost``, ``rabbitmq_user``, ``rabbitmq_permissions``.

Registered under the ``kplan.providers`` entry point as ``rabbitmq``. The
objects live inside a RabbitMQ broker (or cluster) that runs in a container
on an inventory host (``host`` on the resource, ``container`` default
``rabbitmq``). The provider reaches it with ``docker exec`` of the
container's own ``rabbitmqctl``, as the container's rabbitmq user (the
Erlang cookie is in its home), through the host's Docker API
(``conn.docker()``): no management plugin, no port, no admin password.

What must hold here: a refresh costs one exec per host (per container) for
all instances of a type, however many (``export_definitions``); a password
travels in the exec's environment to rabbitmqctl's standard input, never in
a process's arguments, and reaches no diagnostic or log; a name rabbitmqctl
would misread is refused at validate, naming the attribute. Never here:
another provider's modules.
"""

from __future__ import annotations

from kplan.provider_api import ConfigureRequest
from kplan.provider_sdk import ContainerHosts, TypeDispatcher

from ._client import SERVICE
from .permissions import RabbitMQPermissions
from .user import RabbitMQUser
from .vhost import RabbitMQVhost

__all__ = ["RabbitMQProvider", "provider"]


class RabbitMQProvider(TypeDispatcher):
    name = "rabbitmq"

    def __init__(self) -> None:
        self.hosts = ContainerHosts(SERVICE)
        super().__init__(
            [RabbitMQVhost(self.hosts), RabbitMQUser(self.hosts), RabbitMQPermissions(self.hosts)]
        )

    def configure(self, req: ConfigureRequest) -> None:
        self.hosts.configure(req)


#: The entry point's object (``kplan_providers.rabbitmq:provider``).
provider = RabbitMQProvider()
