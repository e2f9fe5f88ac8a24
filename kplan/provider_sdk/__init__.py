"""The provider SDK: what a provider author builds on (kplan's own providers too).

One import for everything a provider needs beyond the protocol in
:mod:`kplan.provider_api`:

    TypeDispatcher   a Provider made of resource types, routing each request by type name
    ResourceType     one type: schema, check, read (batched per host), plan, apply steps
    Target           where an apply step runs (address, host; subclass to add a client)
    Inventory        the hosts and connections ``configure()`` gave, shared by a provider's types
    Failed           raise inside a step to report diagnostics; the base keeps the true state
    read_per_host    group instances by host and read each host once, hosts in parallel
    run_in_container ``docker exec`` in a service's container, Docker failures mapped and
                     retried (with ContainerService, ContainerHosts, ExecCommand, ...)
    shared_read      one fetch per key for every type a refresh reads (one export of a
                     broker's definitions for its users, vhosts and permissions)
    waiting          ``with waiting():`` around a wait (a container's health gate): the
                     change gives its -parallelism place up meanwhile
    attr_error, attr_warning, plain, is_known, keep_secret, check_mode, parse_duration, ...

A type declares how it is replaced in its schema: ``replace_order`` is
``CREATE_BEFORE_DESTROY`` (the new object first, then the old one removed) or
``DESTROY_BEFORE_CREATE`` (the default: for objects whose name is their identity).
How to write a provider: docs/providers/authoring.md.

Never here: anything from kplan.cli, kplan.plan, kplan.apply or kplan.config, and
no provider's code; providers import this, never each other's modules.
"""

from __future__ import annotations

from kplan.provider_api import CREATE_BEFORE_DESTROY, DESTROY_BEFORE_CREATE, ReplaceOrder
from kplan.waiting import waiting

from ._container_exec import (
    ContainerHosts,
    ContainerService,
    ExecCommand,
    ExecOutput,
    ExecReply,
    docker_errors,
    exec_output,
    mask_secrets,
    run_in_container,
)
from ._dispatch import TypeDispatcher
from ._helpers import (
    MODE_RE,
    DurationError,
    attr_error,
    attr_warning,
    check_mode,
    is_known,
    keep_secret,
    missing_host,
    new_id,
    parse_duration,
    plain,
    transport_diag,
)
from ._resource import (
    READ_PARALLELISM,
    Failed,
    Inventory,
    NotConfigured,
    ResourceType,
    States,
    Target,
    read_per_host,
)
from ._shared import shared_read

__all__ = [
    "CREATE_BEFORE_DESTROY",
    "DESTROY_BEFORE_CREATE",
    "MODE_RE",
    "READ_PARALLELISM",
    "ContainerHosts",
    "ContainerService",
    "DurationError",
    "ExecCommand",
    "ExecOutput",
    "ExecReply",
    "Failed",
    "Inventory",
    "NotConfigured",
    "ReplaceOrder",
    "ResourceType",
    "States",
    "Target",
    "TypeDispatcher",
    "attr_error",
    "attr_warning",
    "check_mode",
    "docker_errors",
    "exec_output",
    "is_known",
    "keep_secret",
    "mask_secrets",
    "missing_host",
    "new_id",
    "parse_duration",
    "plain",
    "read_per_host",
    "run_in_container",
    "shared_read",
    "transport_diag",
    "waiting",
]
