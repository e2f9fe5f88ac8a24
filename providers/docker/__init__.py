"""The docker provider: ``docker_image``, ``docker_container``, ``docker_volume``, ``docker_job``.

Registered under the ``kplan.providers`` entry point as ``docker``. Every
instance lives on one host (``host`` on the resource); the provider reaches
that host's Docker API through the connection ``configure`` hands it
(``conn.docker()``: over the host's one SSH session, or the local socket).
:class:`DockerProvider` is a :class:`~kplan.provider_sdk.TypeDispatcher`:
each type is a :class:`~kplan_providers.docker._base.DockerType` in its own module.

What must hold here: a refresh costs a constant number of API calls per host
(one label-filtered list), whatever the number of objects; an unreachable
host yields a ``host-unreachable`` diagnostic for its own instances only; a
Secret is revealed only to the Docker API, never to a diagnostic or a log.
"""

from __future__ import annotations

from kplan.provider_api import ConfigureRequest
from kplan.provider_sdk import TypeDispatcher

from ._base import Hosts
from .container import DockerContainer
from .image import DockerImage
from .job import DockerJob
from .volume import DockerVolume

__all__ = ["DockerProvider", "provider"]


class DockerProvider(TypeDispatcher):
    name = "docker"

    def __init__(self) -> None:
        self.hosts = Hosts()
        super().__init__(
            [
                DockerImage(self.hosts),
                DockerContainer(self.hosts),
                DockerVolume(self.hosts),
                DockerJob(self.hosts),
            ]
        )

    def configure(self, req: ConfigureRequest) -> None:
        self.hosts.configure(req)


#: The entry point's object (``kplan_providers.docker:provider``).
provider = DockerProvider()
