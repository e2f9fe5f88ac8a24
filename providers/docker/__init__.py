"""The docker provider: ``docker_image``, ``docker_container``, ``docker_volume``, ``docker_job``.

Registered under the ``kplan.providers`` entry point as ``docker``. Every
instance lives on one host (``host`` on the resource); the provider reaches
that host's Docker API through the connection ``configure`` hands it
(``conn.docker()``: over the host's one SSH session, or the local socket).
:class:`DockerProvider` is a thin dispatcher, as the builtin provider is:
each type is a :class:`~providers.docker._base.DockerType` in its own module.

What must hold here: a refresh costs a constant number of API calls per host
(one label-filtered list), whatever the number of objects; an unreachable
host yields a ``host-unreachable`` diagnostic for its own instances only; a
Secret is revealed only to the Docker API, never to a diagnostic or a log.
"""

from __future__ import annotations

from collections.abc import Mapping

from kplan.diagnostics import Diagnostic
from kplan.provider_api import (
    ApplyRequest,
    ApplyResponse,
    ConfigureRequest,
    PlanRequest,
    PlanResponse,
    Provider,
    ProviderSchema,
    ReadRequest,
    ReadResponse,
    ValidateRequest,
    ValidateResponse,
)

from ._base import DockerType, Hosts
from .container import DockerContainer
from .image import DockerImage
from .job import DockerJob
from .volume import DockerVolume

__all__ = ["DockerProvider", "provider"]


class DockerProvider(Provider):
    """Routes each request to the resource type it names."""

    name = "docker"

    def __init__(self) -> None:
        self.hosts = Hosts()
        types: list[DockerType] = [
            DockerImage(self.hosts),
            DockerContainer(self.hosts),
            DockerVolume(self.hosts),
            DockerJob(self.hosts),
        ]
        self._types: Mapping[str, DockerType] = {t.type_name: t for t in types}
        self._schema = ProviderSchema({n: t.schema for n, t in sorted(self._types.items())})

    def schema(self) -> ProviderSchema:
        return self._schema

    def configure(self, req: ConfigureRequest) -> None:
        self.hosts.configure(req)

    def _unknown(self, type_name: str) -> Diagnostic:
        return Diagnostic.error(
            f'the docker provider has no resource type "{type_name}"',
            "it serves: " + ", ".join(sorted(self._types)),
            code="unsupported-resource-type",
        )

    def validate(self, req: ValidateRequest) -> ValidateResponse:
        rtype = self._types.get(req.type_name)
        if rtype is None:
            return ValidateResponse([self._unknown(req.type_name)])
        return ValidateResponse(rtype.validate(req.config))

    def read(self, req: ReadRequest) -> ReadResponse:
        rtype = self._types.get(req.type_name)
        if rtype is None:
            states = {i.address: i.state for i in req.instances}
            return ReadResponse(states, [self._unknown(req.type_name)])
        return rtype.read(req.instances)

    def plan(self, req: PlanRequest) -> PlanResponse:
        rtype = self._types.get(req.type_name)
        if rtype is None:
            return PlanResponse(dict(req.config), diagnostics=[self._unknown(req.type_name)])
        return rtype.plan(req)

    def apply(self, req: ApplyRequest) -> ApplyResponse:
        rtype = self._types.get(req.type_name)
        if rtype is None:
            return ApplyResponse(req.prior, [self._unknown(req.type_name)])
        return rtype.apply(req)


#: The entry point's object (``providers.docker:provider``).
provider = DockerProvider()
