"""Walk the configuration graph, expanding and evaluating every object.

The :class:`Evaluator` visits the nodes of a :class:`ConfigGraph` in
dependency order. For each module instance it evaluates variables, locals,
module calls (which create the child module's instances), resources and
outputs. What a resource *is* — its planned or applied value — is decided by
a :class:`ResourceHandler`: the planner plans it, the executor applies it.
The executor's values may be :class:`~kplan.graph.access.Later` (changes in
flight): a for_each block's map then waits per key, anything else here and now.
The evaluator itself never talks to providers or state.

Alongside values it tracks, for every evaluated object, the set of resource
instances it was derived from: a resource instance's dependencies.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from kplan.addrs import (
    ROOT,
    AddressError,
    Key,
    ModuleAddr,
    ResourceAddr,
    ResourceConfigAddr,
    TriggerRef,
)
from kplan.config.expr import (
    Fast,
    Reference,
    compile_text,
    compile_value,
    evaluate,
    evaluate_fast,
    references,
)
from kplan.config.functions_base import mark_sensitive
from kplan.config.model import Host, ModuleCall, ModuleConfig, Positions, Resource
from kplan.config.overrides import READS_KEY, OverrideReads
from kplan.config.types import convert, parse_type
from kplan.diagnostics import Diagnostic, Diagnostics, KplanError, SourcePos
from kplan.graph import access
from kplan.graph.access import ALL, Later, LazyTrackedMap, TrackedList, TrackedMap, WaitingMap
from kplan.graph.builder import ConfigGraph, Node
from kplan.graph.dag import WalkResult, walk
from kplan.values import UNKNOWN, Secret, contains_unknown, reveal

__all__ = ["Evaluator", "Instance", "ResourceHandler"]

Deps = frozenset[ResourceAddr]
_EMPTY: Deps = frozenset()
_ADDRESS = re.compile(
    r"^(?P<type>[A-Za-z_][\w]*)\.(?P<name>[A-Za-z_][\w-]*)(?:\[(?P<key>[^\]]+)\])?(?:\.\w+)*$"
)


@dataclass(slots=True)
class Instance:
    """One resource instance about to be planned or applied."""

    addr: ResourceAddr
    resource: Resource
    scope: Mapping[str, Any]
    # Dependencies known before the attributes are evaluated (for_each, depends_on,
    # triggers, single-instance resources, values passed through locals and modules).
    base_deps: Deps
    host: str | None
    # Maps what an evaluation looked up in multi-instance resources to instances.
    resolve: Callable[[set[tuple[ResourceConfigAddr, Any]]], Deps] = field(repr=False)
    # Every instance of the multi-instance resources the attributes refer to.
    coarse_deps: Callable[[], Deps] = lambda: _EMPTY
    # Values of strings that are the same for every instance of the block.
    shared: dict[str, Any] | None = field(default=None, repr=False)
    # The block's attributes compiled once for all its instances: (raw, compiled).
    program: tuple[dict[str, Any], Fast | None] | None = field(default=None, repr=False)
    _config: dict[str, Any] | None = field(default=None, repr=False)
    _precise: Deps | None = field(default=None, repr=False)

    def config(self) -> dict[str, Any]:
        """The evaluated attributes (evaluated on first use: untargeted ones never are)."""
        if self._config is None:
            raw, fast = self.program or (dict(self.resource.config), None)
            seen, token = access.start()
            try:
                value = evaluate_fast(
                    fast, raw, self.scope, self.resource.positions, shared=self.shared
                )
            finally:
                access.stop(token)
            # A new dict already when evaluated from a map (as the attributes always are).
            self._config = value if type(value) is dict else dict(value)
            self._precise = self.base_deps | self.resolve(seen) if seen else self.base_deps
        return self._config

    @property
    def deps(self) -> Deps:
        """What this instance depends on: exact once its attributes are evaluated."""
        if self._precise is None:
            return self.base_deps | self.coarse_deps()
        return self._precise

    def evaluate(self, raw: Any, positions: Positions | None = None) -> Any:
        fast = compile_text(raw) if type(raw) is str else None
        return evaluate_fast(fast, raw, self.scope, positions or self.resource.positions)


class ResourceHandler(Protocol):
    def resource(
        self, addr: ResourceConfigAddr, instances: list[Instance]
    ) -> Mapping[ResourceAddr, Any]:
        """Plan or apply the instances of one resource block; return their values."""
        ...


class Deferring(Protocol):
    """A handler that can leave instances out before they are even created."""

    def wanted_keys(self, addr: ResourceConfigAddr, resource: Resource) -> set[Key] | None:
        """The only instance keys of this block it needs (None: all of them)."""
        ...

    def deferred(self, addr: ResourceAddr) -> Any:
        """The value of an instance left out (its recorded state, read when used)."""
        ...

    def wanted_module_keys(self, parent: ModuleAddr, name: str) -> set[Key] | None:
        """The only instances of module call ``name`` in ``parent`` it needs (None: all).

        Nothing may read the others: their outputs stay empty."""
        ...


@dataclass
class _ModuleInstance:
    addr: ModuleAddr
    config: ModuleConfig
    scope: dict[str, Any]
    inputs: dict[str, tuple[Any, Deps]]
    call: ModuleCall | None


class Evaluator:
    def __init__(
        self,
        cg: ConfigGraph,
        variables: Mapping[str, Any],
        handler: ResourceHandler,
        *,
        root_dir: str,
        validating: bool = False,
    ) -> None:
        self.cg = cg
        self.handler = handler
        # kplan validate: a for_each / count / hosts / host not known yet is no error;
        # such a block (or module) is evaluated once, with each.* / count.index unknown.
        self.validating = validating
        root = cg.modules[()]
        self.hosts: dict[str, Host] = dict(root.hosts)
        # The override files config_overrides() looked for: the planner warns of the others.
        self.override_reads = OverrideReads()
        self._base_scope = {
            "host": {n: _host_value(h) for n, h in root.hosts.items()},
            "groups": {g: list(m) for g, m in root.groups.items()},
            READS_KEY: self.override_reads,
        }
        rootmi = _ModuleInstance(
            ROOT,
            root,
            self._new_scope(root, list(root.hosts), root_dir),
            {k: (v, _EMPTY) for k, v in variables.items()},
            None,
        )
        self.instances: dict[tuple[str, ...], list[_ModuleInstance]] = {(): [rootmi]}
        self.deps: dict[tuple[ModuleAddr, str, str], Deps] = {}
        self.resource_instances: dict[tuple[ModuleAddr, str], list[ResourceAddr]] = {}
        # Instances a targeted plan left out, by block: their keys, turned into
        # addresses only if a dependency needs them (see instances_of).
        self.left_out: dict[tuple[ModuleAddr, str], tuple[ResourceConfigAddr, list[Key]]] = {}
        self.left_out_keys: dict[tuple[ModuleAddr, str], set[Key]] = {}
        self.outputs: dict[str, tuple[Any, bool]] = {}
        self.seen: set[ResourceAddr] = set()
        # Resource blocks with for_each or count, by module instance.
        self.multi: set[tuple[ModuleAddr, str]] = set()
        self._lock = threading.Lock()
        self._refs: dict[int, tuple[Any, list[Reference]]] = {}
        # The instance addresses of each block by key: what resolve_access hands out.
        self._by_key: dict[ResourceConfigAddr, dict[Key, ResourceAddr]] = {}

    def _new_scope(self, cfg: ModuleConfig, hosts: list[str], root_dir: str) -> dict[str, Any]:
        scope: dict[str, Any] = dict(self._base_scope)
        scope.update(
            var={},
            local={},
            module={},
            hosts=hosts,
            path={"module": _relative(cfg.dir, root_dir), "root": "."},
        )
        for type_, _ in cfg.resources:
            scope.setdefault(type_, {})
        return scope

    # -- the walk ---------------------------------------------------------

    def run(
        self,
        *,
        parallelism: int = 1,
        only: set[Node] | None = None,
        stop_on_failure: bool = True,
        cancel: threading.Event | None = None,
    ) -> WalkResult[Node]:
        """Walk the graph (with ``only``: just those nodes, e.g. a targeted plan's).

        Without ``stop_on_failure`` only what depends on a failed node is left out:
        every independent error is found (kplan validate)."""
        graph = self.cg.graph if only is None else self.cg.graph.subgraph(only)
        return walk(
            graph,
            self.visit,
            parallelism=parallelism,
            key=_node_key,
            stop_on_failure=stop_on_failure,
            cancel=cancel,
        )

    def visit(self, node: Node) -> None:
        visit = self._VISITORS[node.kind]
        for mi in list(self.instances.get(node.module, [])):
            visit(self, node, mi)

    def _refs_of(self, raw: Any, positions: Positions) -> list[Reference]:
        # Keyed by id, so the value is kept too: alive, its id cannot go to another one.
        found = self._refs.get(id(raw))
        if found is None or found[0] is not raw:
            found = self._refs[id(raw)] = (raw, references(raw, positions))
        return found[1]

    def deps_of(
        self, mi: _ModuleInstance, raw: Any, positions: Positions, *, split: bool = False
    ) -> Any:
        """The resource instances a raw value depends on, in module instance ``mi``.

        With ``split``, return (other deps, a function giving every instance of the
        multi-instance resources referred to): those are refined later by what
        the evaluation actually looked up, and usually never needed whole.
        """
        out: set[ResourceAddr] = set()
        multi: list[Reference] = []
        for ref in self._refs_of(raw, positions):
            if split and ref.root == "resource" and self._is_multi(mi.addr, ref):
                multi.append(ref)
            else:
                out |= self._ref_deps(mi.addr, ref)
        if not split:
            return frozenset(out)
        coarse: Deps | None = None

        def every() -> Deps:
            nonlocal coarse
            if coarse is None:
                coarse = frozenset().union(*(self._ref_deps(mi.addr, r) for r in multi))
            return coarse

        return frozenset(out), every

    def _is_multi(self, m: ModuleAddr, ref: Reference) -> bool:
        return (m, f"{ref.parts[0]}.{ref.parts[1]}") in self.multi

    def instances_of(self, m: ModuleAddr, name: str) -> list[ResourceAddr]:
        """Every instance address of a block, the left-out ones included."""
        with self._lock:
            found = self.resource_instances.get((m, name), [])
            pending = self.left_out.pop((m, name), None)
            if pending is not None:
                cfg, keys = pending
                found = [*found, *(cfg.instance(k) for k in keys)]
                self.resource_instances[(m, name)] = found
            return found

    def _exists(self, addr: ResourceAddr) -> bool:
        block = (addr.module, f"{addr.type}.{addr.name}")
        return addr in self.seen or addr.key in self.left_out_keys.get(block, ())

    def resolve_access(self, seen: set[tuple[ResourceConfigAddr, Any]]) -> Deps:
        out: set[ResourceAddr] = set()
        by_key = self._by_key
        for cfg, key in seen:
            if key is ALL:
                out.update(self.instances_of(cfg.module, f"{cfg.type}.{cfg.name}"))
                continue
            found = None
            if type(key) is str or type(key) is int:
                known = by_key.get(cfg)
                found = known.get(key) if known is not None else None
            out.add(found if found is not None else cfg.instance(key))
        return frozenset(out)

    def _ref_deps(self, m: ModuleAddr, ref: Reference) -> Deps:
        if ref.root in ("var", "local") and ref.parts:
            return self.deps.get((m, ref.root, str(ref.parts[0])), _EMPTY)
        if ref.root == "resource" and len(ref.parts) >= 2:
            name = f"{ref.parts[0]}.{ref.parts[1]}"
            return frozenset(self.instances_of(m, name))
        if ref.root == "module" and ref.parts:
            return self._module_deps(m, str(ref.parts[0]), ref.parts[1:])
        return _EMPTY

    def _module_deps(self, m: ModuleAddr, name: str, rest: tuple[str | int, ...]) -> Deps:
        out: set[ResourceAddr] = set()
        path = (*(s.name for s in m.steps), name)
        for child in self.instances.get(path, []):
            if child.addr.steps[:-1] != m.steps:
                continue
            tail = rest
            key = child.addr.steps[-1].key
            if key is not None and tail:
                if tail[0] != key:
                    continue  # module.NAME[OTHER]: another instance
                tail = tail[1:]
            if tail and isinstance(tail[0], str) and (child.addr, "output", tail[0]) in self.deps:
                out |= self.deps[(child.addr, "output", tail[0])]
            else:
                out |= self._all_resources_within(child.addr)
        return frozenset(out)

    def _all_resources_within(self, m: ModuleAddr) -> set[ResourceAddr]:
        for block in list(self.left_out):
            self.instances_of(*block)
        return {
            a
            for (mod, _), addrs in list(self.resource_instances.items())
            if mod.is_within(m)
            for a in addrs
        }

    # -- visitors -----------------------------------------------------------

    def _visit_var(self, node: Node, mi: _ModuleInstance) -> None:
        var = mi.config.variables[node.name]
        if node.name in mi.inputs:
            value, deps = mi.inputs[node.name]
        elif not var.required:
            value, deps = var.default, _EMPTY
        else:
            where = f'module "{mi.call.name}"' if mi.call else "the root module"
            pos = mi.call.pos if mi.call else var.pos
            raise _error(
                f'{where} needs a value for variable "{node.name}"',
                "set it in the module call's inputs" if mi.call else "",
                pos,
                "missing-variable",
            )
        value = self._convert_var(var.name, var.type, value, var.pos)
        if var.sensitive:
            value = mark_sensitive(value)
        for rule in var.validations:
            ok = evaluate(rule.condition, {"var": {node.name: value}}, Positions(rule.pos))
            if ok is UNKNOWN:
                continue
            if not reveal(ok):
                raise _error(
                    f'invalid value for variable "{node.name}"',
                    rule.error_message,
                    rule.pos,
                    "variable-validation",
                )
        mi.scope["var"][node.name] = value
        self.deps[(mi.addr, "var", node.name)] = deps

    def _convert_var(self, name: str, type_: str, value: Any, pos: SourcePos) -> Any:
        if value is UNKNOWN:
            return value
        try:
            return convert(value, parse_type(type_), f"var.{name}")
        except KplanError:
            raise
        except Exception as exc:
            raise _error(
                f'invalid value for variable "{name}"', str(exc), pos, "variable-type"
            ) from None

    def _visit_local(self, node: Node, mi: _ModuleInstance) -> None:
        local = mi.config.locals[node.name]
        mi.scope["local"][node.name] = evaluate(local.value, mi.scope, local.pos)
        self.deps[(mi.addr, "local", node.name)] = self.deps_of(mi, local.value, local.pos)

    def _visit_output(self, node: Node, mi: _ModuleInstance) -> None:
        out = mi.config.outputs[node.name]
        pos = out.pos.sub("value")
        value = evaluate(out.value, mi.scope, pos)
        deps = self.deps_of(mi, out.value, pos)
        if out.depends_on:
            deps = deps | self._address_deps(mi, out.depends_on, (), mi.scope, pos.base)
        self.deps[(mi.addr, "output", node.name)] = deps
        if out.sensitive:
            value = mark_sensitive(value)
        if mi.addr.is_root:
            self.outputs[node.name] = (value, out.sensitive)
            return
        parent = self._parent(mi)
        step = mi.addr.steps[-1]
        slot = parent.scope["module"][step.name]
        if slot is UNKNOWN:  # kplan validate: instances not known yet
            return
        if step.key is None:
            slot[node.name] = value
        else:
            slot[step.key][node.name] = value

    def _parent(self, mi: _ModuleInstance) -> _ModuleInstance:
        path = tuple(s.name for s in mi.addr.steps[:-1])
        parent_addr = ModuleAddr(mi.addr.steps[:-1])
        for p in self.instances[path]:
            if p.addr == parent_addr:
                return p
        raise AssertionError(f"no parent instance for {mi.addr}")

    def _visit_module_end(self, node: Node, mi: _ModuleInstance) -> None:
        return None

    def _visit_module(self, node: Node, mi: _ModuleInstance) -> None:
        call = mi.config.modules[node.name]
        child_path = (*node.module, node.name)
        keys = self._expand(call.for_each, call.count, mi.scope, call.positions, call.pos)
        base_deps = self._meta_deps(mi, call.for_each, call.count, call.positions)
        if keys is None and self.validating:
            children = self.instances.setdefault(child_path, [])
            mi.scope["module"][node.name] = UNKNOWN  # module.NAME[KEY].OUTPUT: unknown
            scope = _unknown_each(mi.scope, call.count is not None)
            children.append(self._module_instance(mi, call, scope, None, base_deps))
            return
        if keys is None:
            raise _error(
                f'the for_each or count of module "{call.name}" depends on values known '
                "only after apply",
                "use values known at plan time",
                call.pos,
                "unknown-expansion",
            )
        children = self.instances.setdefault(child_path, [])
        slot: Any
        if call.count is not None:
            slot = [{} for _ in keys]
        elif call.for_each is not None:
            slot = {k: {} for k, _ in keys}
        else:
            slot = {}
        mi.scope["module"][node.name] = slot
        # A plan focused on some instances of this call (-target 'module.node["h1"]')
        # makes only those: nothing it evaluates reads the others.
        wanted_of = getattr(self.handler, "wanted_module_keys", None)
        wanted = wanted_of(mi.addr, node.name) if wanted_of is not None else None
        for key, each in keys:
            if wanted is not None and key not in wanted:
                continue
            scope = _with_each(mi.scope, key, each, call.count is not None)
            child = self._module_instance(mi, call, scope, key, base_deps)
            children.append(child)

    def _module_instance(
        self, mi: _ModuleInstance, call: ModuleCall, scope: dict[str, Any], key: Key, deps: Deps
    ) -> _ModuleInstance:
        pos = call.positions.sub("inputs")
        inputs: dict[str, tuple[Any, Deps]] = {}
        for name, raw in call.inputs.items():
            if name not in call.module.variables:
                declared = ", ".join(sorted(call.module.variables)) or "none"
                raise _error(
                    f'module "{call.name}" has no variable "{name}"',
                    f"its variables: {declared}",
                    pos.at((name,)),
                    "unknown-input",
                )
            sub = pos.sub(name)
            inputs[name] = (evaluate(raw, scope, sub), deps | self.deps_of(mi, raw, sub))
        hosts = scope["hosts"]
        if call.hosts is not None:
            value = evaluate(call.hosts, scope, call.positions.sub("hosts"))
            hosts = UNKNOWN if self.validating and contains_unknown(value) else None
            if hosts is None:
                hosts = self._host_list(value, call)
        child_scope = self._new_scope(call.module, hosts, mi.scope["path"]["root"])
        return _ModuleInstance(
            mi.addr.child(call.name, key), call.module, child_scope, inputs, call
        )

    def _host_list(self, value: Any, call: ModuleCall) -> list[str]:
        names = list(value.keys()) if isinstance(value, dict) else value
        pos = call.positions.at(("hosts",))
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise _error(
                f'module "{call.name}": hosts must be a list of host names',
                f"got {type(value).__name__}",
                pos,
                "invalid-hosts",
            )
        for n in names:
            if n not in self.hosts:
                raise _error(f'module "{call.name}": unknown host "{n}"', "", pos, "unknown-host")
        return list(names)

    def _visit_resource(self, node: Node, mi: _ModuleInstance) -> None:
        type_, name = node.name.split(".", 1)
        res = mi.config.resources[(type_, name)]
        keys = self._expand(res.for_each, res.count, mi.scope, res.positions, res.pos)
        unknown_keys = keys is None and self.validating
        if unknown_keys:
            keys = [(None, UNKNOWN)]
        if keys is None:
            raise _error(
                f"the for_each or count of {type_}.{name} depends on values known only after apply",
                "use values known at plan time, or create the resources it depends on "
                "first with -target",
                res.pos,
                "unknown-expansion",
            )
        cfg_addr = ResourceConfigAddr(mi.addr, type_, name)
        base = self._meta_deps(mi, res.for_each, res.count, res.positions)
        cfg_deps, multi_deps = self.deps_of(mi, dict(res.config), res.positions, split=True)
        base |= cfg_deps
        triggers = (*res.lifecycle.restart_on, *res.lifecycle.replace_on)
        addressed = bool(res.depends_on or triggers)
        instances = []
        shared: dict[str, Any] = {}
        left_out: list[Key] = []
        wanted_keys = getattr(self.handler, "wanted_keys", None)
        wanted = wanted_keys(cfg_addr, res) if wanted_keys is not None else None
        raw = dict(res.config)
        program = (raw, compile_value(raw, shared))
        host_fast = compile_value(res.host) if res.host is not None else None
        for key, each in keys:
            if wanted is not None and key not in wanted:
                left_out.append(key)
                continue
            if unknown_keys:
                scope = _unknown_each(mi.scope, res.count is not None)
            else:
                scope = _with_each(mi.scope, key, each, res.count is not None)
            addr = cfg_addr.instance(key)
            host = self._instance_host(res, scope, host_fast)
            deps = (
                base | self._address_deps(mi, res.depends_on, triggers, scope, res.pos)
                if addressed
                else base
            )
            instances.append(
                Instance(
                    addr, res, scope, deps, host, self.resolve_access, multi_deps, shared, program
                )
            )
        with self._lock:
            if res.for_each is not None or res.count is not None:
                self.multi.add((mi.addr, node.name))
            self.resource_instances[(mi.addr, node.name)] = [i.addr for i in instances]
            self._by_key[cfg_addr] = {i.addr.key: i.addr for i in instances}
            # Left-out instances are not "seen": orphans are only looked for among
            # the rows the targeted plan read, and those exclude them.
            self.seen.update(i.addr for i in instances)
            if left_out:
                self.left_out[(mi.addr, node.name)] = (cfg_addr, left_out)
                self.left_out_keys[(mi.addr, node.name)] = set(left_out)
        values = self._settled(mi, res, cfg_addr, self.handler.resource(cfg_addr, instances))
        if values is None:
            return
        if left_out:
            deferred = self.handler.deferred  # type: ignore[attr-defined]
            present = {i.addr.key: values[i.addr] for i in instances}
            mi.scope[type_][name] = LazyTrackedMap(
                cfg_addr,
                present,
                [k for k, _ in keys],
                set(left_out),
                lambda k: deferred(cfg_addr.instance(k)),
            )
            return
        every = [i.addr for i in instances]
        if unknown_keys:
            mi.scope[type_][name] = UNKNOWN
        elif res.for_each is not None:
            by_key = {a.key: values[a] for a in every}
            mi.scope[type_][name] = TrackedMap(cfg_addr, by_key)
        elif res.count is not None:
            mi.scope[type_][name] = TrackedList(cfg_addr, [values[a] for a in every])
        else:
            mi.scope[type_][name] = values[every[0]]

    def _settled(
        self,
        mi: _ModuleInstance,
        res: Resource,
        cfg_addr: ResourceConfigAddr,
        values: Mapping[ResourceAddr, Any],
    ) -> Mapping[ResourceAddr, Any] | None:
        """Values with none :class:`Later`; None once a WaitingMap holds them in the scope."""
        if not any(isinstance(v, Later) for v in values.values()):
            return values
        if res.for_each is not None and not self.left_out_keys.get(
            (mi.addr, f"{res.type}.{res.name}")
        ):
            # Each lookup waits for the instance it needs, not for the whole block.
            by_key = {a.key: v for a, v in values.items()}
            mi.scope[res.type][res.name] = WaitingMap(cfg_addr, by_key)
            return None
        return {a: v.get() if isinstance(v, Later) else v for a, v in values.items()}

    def _address_deps(
        self,
        mi: _ModuleInstance,
        depends_on: tuple[str, ...],
        triggers: tuple[str, ...],
        scope: Mapping[str, Any],
        pos: SourcePos,
    ) -> Deps:
        """Deps of addresses written without ${}; ``x[each.key]`` names one instance."""
        out: set[ResourceAddr] = set()
        entries: list[tuple[str, str, str | None]] = []
        for text in depends_on:
            m = _address_match(text)
            if m is None:
                continue
            if m["type"] == "module":
                out |= self._module_deps(mi.addr, m["name"], ())
                continue
            entries.append((m["type"], m["name"], m["key"]))
        for text in triggers:
            try:
                t = TriggerRef.parse(text)
            except AddressError:
                continue  # the loader, the graph builder and the planner say why
            entries.append((t.type, t.name, t.key))
        for type_, name, key_text in entries:
            if key_text is None:
                out.update(self.instances_of(mi.addr, f"{type_}.{name}"))
                continue
            expr = "${" + key_text + "}"
            key = reveal(evaluate_fast(compile_text(expr), expr, scope, Positions(pos)))
            if key is UNKNOWN:  # kplan validate: each.key not known yet
                out.update(self.instances_of(mi.addr, f"{type_}.{name}"))
                continue
            if not isinstance(key, str) and (not isinstance(key, int) or isinstance(key, bool)):
                raise _error(
                    f"the key in {type_}.{name}[{key_text}] must be a string or a whole number",
                    f"it is {type(key).__name__}: an instance key is a for_each key or a "
                    "count index",
                    pos,
                    code="invalid-key",
                )
            one = ResourceAddr(mi.addr, type_, name, key)
            if self._exists(one):
                out.add(one)
        return frozenset(out)

    def _instance_host(
        self, res: Resource, scope: Mapping[str, Any], fast: Fast | None = None
    ) -> str | None:
        if res.host is None:
            return None
        value = evaluate_fast(fast, res.host, scope, res.positions.sub("host"))
        if value is UNKNOWN and self.validating:
            return None
        if value is UNKNOWN:
            raise _error("host must be known at plan time", "", res.positions.at(("host",)))
        if isinstance(value, dict) and "name" in value:
            value = value["name"]
        if not isinstance(value, str) or value not in self.hosts:
            known = ", ".join(sorted(self.hosts)) or "none (declare them under hosts:)"
            raise _error(
                f'unknown host "{value}" for {res.type}.{res.name}',
                f"hosts: {known}",
                res.positions.at(("host",)),
                "unknown-host",
            )
        return value

    def _meta_deps(self, mi: _ModuleInstance, for_each: Any, count: Any, pos: Positions) -> Deps:
        out: Deps = _EMPTY
        if for_each is not None:
            out |= self.deps_of(mi, for_each, pos.sub("for_each"))
        if count is not None:
            out |= self.deps_of(mi, count, pos.sub("count"))
        return out

    def _expand(
        self,
        for_each: Any,
        count: Any,
        scope: Mapping[str, Any],
        positions: Positions,
        pos: SourcePos,
    ) -> list[tuple[Key, Any]] | None:
        """Instance keys with each.value; [] for none; None when not known yet."""
        if count is not None:
            n = evaluate(count, scope, positions.sub("count"))
            if n is UNKNOWN:
                return None
            n = reveal(n)
            if isinstance(n, float) and n.is_integer():
                n = int(n)
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                raise _error(
                    "count must be a whole number ≥ 0",
                    f"got {n!r}",
                    positions.at(("count",)),
                    "invalid-count",
                )
            return [(i, None) for i in range(n)]
        if for_each is None:
            return [(None, None)]
        value = evaluate(for_each, scope, positions.sub("for_each"))
        if contains_unknown(value) and not isinstance(value, dict):
            return None
        value = reveal(value) if isinstance(value, Secret) else value
        if isinstance(value, dict):
            return [(str(k), value[k]) for k in sorted(value, key=str)]
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return [(v, v) for v in sorted(set(value))]
        raise _error(
            "for_each must be a map, or a list of strings",
            f"got {type(value).__name__}",
            positions.at(("for_each",)),
            "invalid-for-each",
        )

    _VISITORS: dict[str, Callable[[Evaluator, Node, _ModuleInstance], None]] = {
        "var": _visit_var,
        "local": _visit_local,
        "output": _visit_output,
        "module": _visit_module,
        "module_end": _visit_module_end,
        "resource": _visit_resource,
    }


_KIND_ORDER = {"var": 0, "local": 1, "module": 2, "resource": 3, "module_end": 4, "output": 5}


_MATCHES: dict[str, re.Match[str] | None] = {}


def _address_match(text: str) -> re.Match[str] | None:
    """_ADDRESS matched against an address written without ${} (cached: once per block)."""
    try:
        return _MATCHES[text]
    except KeyError:
        if len(_MATCHES) > 10_000:
            _MATCHES.clear()
        m = _MATCHES[text] = _ADDRESS.match(text.strip())
        return m


def _node_key(n: Node) -> tuple[tuple[str, ...], int, str]:
    return (n.module, _KIND_ORDER[n.kind], n.name)


def _relative(path: str, root: str) -> str:
    # Relative, as Terraform's path.module: plans stay the same wherever the checkout is.
    import os

    return os.path.relpath(path, root)


def _with_each(scope: Mapping[str, Any], key: Key, each: Any, is_count: bool) -> dict[str, Any]:
    out = dict(scope)
    if key is None:
        return out
    if is_count:
        out["count"] = {"index": key}
    else:
        out["each"] = {"key": key, "value": each}
    return out


def _unknown_each(scope: Mapping[str, Any], is_count: bool) -> dict[str, Any]:
    """The scope of the one instance kplan validate evaluates when keys are unknown."""
    out = dict(scope)
    if is_count:
        out["count"] = {"index": UNKNOWN}
    else:
        out["each"] = {"key": UNKNOWN, "value": UNKNOWN}
    return out


def _host_value(h: Host) -> dict[str, Any]:
    return {
        "name": h.name,
        "address": h.address,
        "groups": list(h.groups),
        "connection": h.connection,
        "vars": dict(h.vars),
    }


def _error(summary: str, detail: str, pos: SourcePos | None, code: str = "") -> KplanError:
    return KplanError(Diagnostic.error(summary, detail, pos, code))


def collect(result: WalkResult[Node]) -> Diagnostics:
    """The diagnostics of a walk's failures (non-kplan exceptions are re-raised)."""
    diags = Diagnostics()
    for exc in result.failed.values():
        if isinstance(exc, KplanError):
            diags.extend(exc.diagnostics)
        else:
            raise exc
    return diags
