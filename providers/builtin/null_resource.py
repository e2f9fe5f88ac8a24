"""``null_resource``: nothing outside kplan; a node in the graph with an identity.

Attributes: ``triggers`` (a map; any change replaces it) and the computed
``id``, random hex chosen at apply. Useful to order work, in tests and in the
scale benchmark: it costs no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kplan.provider_api import ApplyResponse, Attribute, ResourceSchema
from kplan.provider_sdk import ResourceType, Target, new_id

__all__ = ["NullResource"]

SCHEMA = ResourceSchema(
    type_name="null_resource",
    description="Does nothing; replaced when its triggers change.",
    attributes={
        "triggers": Attribute(
            "map", optional=True, force_new=True, description="any change replaces the resource"
        ),
        "id": Attribute("string", computed=True, description="random hex chosen at create"),
    },
)


class NullResource(ResourceType[Target]):
    schema = SCHEMA

    def create_at(self, t: Target, planned: Mapping[str, Any]) -> ApplyResponse:
        return ApplyResponse({**planned, "id": new_id()})
