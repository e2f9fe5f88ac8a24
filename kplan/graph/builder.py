"""Build the configuration graph of a module tree from static references.

Nodes are configuration objects, not instances: one node per variable,
local, resource block, module call and output of each module *path* (the
chain of module call names). Instances (``for_each``/``count``) are expanded
while the graph is walked, as Terraform does. Every reference found in an
expression becomes an edge; a reference to something that is not declared
is a diagnostic with its position, and a cycle is one diagnostic that prints
the cycle.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from kplan.addrs import AddressError, TriggerRef
from kplan.config.expr import Reference, check_syntax, escape_hint, references
from kplan.config.model import ModuleConfig, Positions
from kplan.config.resource_blocks import invalid_trigger
from kplan.diagnostics import Diagnostics, SourcePos
from kplan.graph.dag import Graph

__all__ = ["ConfigGraph", "Node", "build_graph", "iter_modules"]

ModulePath = tuple[str, ...]


@dataclass(frozen=True, slots=True, order=True)
class Node:
    """One configuration object: kind is var, local, resource, module, output or module_end."""

    module: ModulePath
    kind: str
    name: str

    def __str__(self) -> str:
        prefix = "".join(f"module.{m}." for m in self.module)
        if self.kind == "resource":
            return prefix + self.name
        if self.kind == "module_end":
            return prefix + f"module.{self.name} (all)"
        return prefix + f"{self.kind}.{self.name}"


@dataclass
class ConfigGraph:
    graph: Graph[Node]
    modules: dict[ModulePath, ModuleConfig]


def iter_modules(
    root: ModuleConfig, path: ModulePath = ()
) -> Iterator[tuple[ModulePath, ModuleConfig]]:
    yield path, root
    for name in sorted(root.modules):
        yield from iter_modules(root.modules[name].module, (*path, name))


def build_graph(root: ModuleConfig) -> tuple[ConfigGraph, Diagnostics]:
    diags = Diagnostics()
    g: Graph[Node] = Graph()
    modules = dict(iter_modules(root))
    for path, cfg in modules.items():
        _add_module(g, path, cfg, modules, diags)
    cycle = g.find_cycle()
    if cycle is not None:
        diags.error(
            "dependency cycle",
            "the cycle: " + " → ".join(str(n) for n in cycle),
            _node_pos(modules, cycle[0]),
            code="dependency-cycle",
        )
    return ConfigGraph(g, modules), diags


def _add_module(
    g: Graph[Node],
    path: ModulePath,
    cfg: ModuleConfig,
    modules: dict[ModulePath, ModuleConfig],
    diags: Diagnostics,
) -> None:
    parent_call = Node(path[:-1], "module", path[-1]) if path else None

    def node(kind: str, name: str) -> Node:
        n = Node(path, kind, name)
        g.add(n)
        if parent_call is not None:
            g.connect(n, parent_call)
        return n

    linker = _Linker(g, path, cfg, modules, diags)
    for name in cfg.variables:
        node("var", name)
    for name, local in cfg.locals.items():
        linker.link(node("local", name), local.value, local.pos)
    for (type_, name), res in cfg.resources.items():
        n = node("resource", f"{type_}.{name}")
        for key in ("for_each", "count", "host"):
            raw = getattr(res, key)
            if raw is not None:
                linker.link(n, raw, res.positions.sub(key))
        linker.link(n, dict(res.config), res.positions)
        for ref in res.depends_on:
            linker.link_address(n, ref, res.pos)
        for key in ("restart_on", "replace_on"):
            for i, text in enumerate(getattr(res.lifecycle, key)):
                nodes = res.positions.nodes
                pos = nodes.get((key, i)) or nodes.get(("lifecycle", key, i)) or res.pos
                linker.link_trigger(n, f"resources.{type_}.{name}.{key}[{i}]", text, pos)
    for name, call in cfg.modules.items():
        n = node("module", name)
        for key in ("for_each", "count", "hosts"):
            raw = getattr(call, key)
            if raw is not None:
                linker.link(n, raw, call.positions.sub(key))
        linker.link(n, dict(call.inputs), call.positions.sub("inputs"))
        for ref in call.depends_on:
            linker.link_address(n, ref, call.pos)
        end = node("module_end", name)
        g.connect(end, n)
    for name, out in cfg.outputs.items():
        n = node("output", name)
        linker.link(n, out.value, out.pos.sub("value"))
        for i, ref in enumerate(out.depends_on):
            linker.link_address(n, ref, out.pos.at(("depends_on", i)))
    if parent_call is not None:
        end = Node(path[:-1], "module_end", path[-1])
        for n in list(g.nodes):
            if n.module == path and n.kind in ("resource", "output", "module_end"):
                g.connect(end, n)


class _Linker:
    def __init__(
        self,
        g: Graph[Node],
        path: ModulePath,
        cfg: ModuleConfig,
        modules: dict[ModulePath, ModuleConfig],
        diags: Diagnostics,
    ) -> None:
        self.g, self.path, self.cfg, self.modules, self.diags = g, path, cfg, modules, diags

    def link(self, n: Node, raw: object, positions: Positions) -> None:
        # Every expression is checked here, so that validate reports all syntax errors.
        self.diags.extend(check_syntax(raw, positions))
        for ref in references(raw, positions):
            target = self.resolve(ref, positions.base)
            if target is not None and not self.refers_to_itself(n, target, ref.pos):
                self.g.connect(n, target)

    def refers_to_itself(self, n: Node, target: Node, pos: SourcePos | None) -> bool:
        """A block that reads itself: its value would need itself first (as Terraform, refused)."""
        if target != n:
            return False
        self.diags.error(
            f"{n} refers to itself",
            "a block cannot read its own values or wait for itself; "
            "for another instance of the same block, split it into two blocks",
            pos,
            code="self-reference",
        )
        return True

    def resolve(self, ref: Reference, fallback: SourcePos) -> Node | None:
        pos = ref.pos or fallback
        cfg, parts = self.cfg, ref.parts
        if ref.root in ("var", "local"):
            table = cfg.variables if ref.root == "var" else cfg.locals
            word = "variable" if ref.root == "var" else "local value"
            if not parts or parts[0] not in table:
                name = parts[0] if parts else ""
                known = ", ".join(sorted(table)) or "none"
                self.diags.error(
                    f'reference to undeclared {word} "{name}"',
                    f"declared here: {known}",
                    pos,
                    code="undeclared-reference",
                )
                return None
            return Node(self.path, ref.root, str(parts[0]))
        if ref.root == "module":
            return self._module(parts, pos)
        if ref.root == "resource":
            return self._resource(parts, pos)
        return None

    def _module(self, parts: tuple[str | int, ...], pos: SourcePos) -> Node | None:
        if not parts or parts[0] not in self.cfg.modules:
            name = parts[0] if parts else ""
            known = ", ".join(sorted(self.cfg.modules)) or "none"
            self.diags.error(
                f'reference to undeclared module "{name}"',
                f"module calls here: {known}",
                pos,
                code="undeclared-reference",
            )
            return None
        name = str(parts[0])
        call = self.cfg.modules[name]
        child = call.module
        steps = list(parts[1:])
        if call.for_each is not None or call.count is not None:
            steps = steps[1:]  # module.NAME[KEY].OUTPUT: skip the instance key
        rest = [p for p in steps if isinstance(p, str)]
        if rest and rest[0] in child.outputs:
            return Node((*self.path, name), "output", rest[0])
        if rest:
            known = ", ".join(sorted(child.outputs)) or "none"
            self.diags.error(
                f'module "{name}" has no output "{rest[0]}"',
                f"its outputs: {known}",
                pos,
                code="undeclared-reference",
            )
            return None
        return Node(self.path, "module_end", name)

    def _resource(self, parts: tuple[str | int, ...], pos: SourcePos) -> Node | None:
        if len(parts) < 2:
            self.diags.error(
                f'"{parts[0] if parts else ""}" is not a valid reference',
                "a resource is referenced as TYPE.NAME (e.g. local_file.conf.sha256); "
                "other references start with var., local., module., each., count., "
                "host., hosts, groups. or path."
                + (f"\n{escape_hint(str(parts[0]))}" if parts else ""),
                pos,
                code="invalid-reference",
            )
            return None
        key = (str(parts[0]), str(parts[1]))
        if key not in self.cfg.resources:
            self.diags.error(
                f'reference to undeclared resource "{key[0]}.{key[1]}"',
                "declare it under `resources:` as " + f'"{key[0]}.{key[1]}"',
                pos,
                code="undeclared-reference",
            )
            return None
        return Node(self.path, "resource", f"{key[0]}.{key[1]}")

    def link_trigger(self, n: Node, where: str, text: str, pos: SourcePos) -> None:
        """A restart_on / replace_on entry: an edge to the block, and its KEY's references."""
        try:
            ref = TriggerRef.parse(text)
        except AddressError as exc:
            self.diags.add(invalid_trigger(where, text, str(exc), pos))
            return
        target = self._resource((ref.type, ref.name), pos)
        if target is not None and not self.refers_to_itself(n, target, pos):
            self.g.connect(n, target)
        if ref.key is not None:  # e.g. [local.primary]: checked and linked as an expression
            self.link(n, "${" + ref.key + "}", Positions(pos))

    def link_address(self, n: Node, text: str, pos: SourcePos) -> None:
        """An address written without ${} (depends_on)."""
        parts = [p.split("[")[0] for p in text.strip().split(".")]
        target: Node | None = None
        if len(parts) >= 2 and parts[0] == "module":
            target = self._module((parts[1],), pos)
        elif len(parts) >= 2 and all(parts[:2]):
            target = self._resource((parts[0], parts[1]), pos)
        else:
            self.diags.error(
                f'invalid reference "{text}"',
                "expected TYPE.NAME, TYPE.NAME.ATTRIBUTE or module.NAME",
                pos,
                code="invalid-reference",
            )
        if target is not None and not self.refers_to_itself(n, target, pos):
            self.g.connect(n, target)


def _node_pos(modules: dict[ModulePath, ModuleConfig], n: Node) -> SourcePos | None:
    cfg = modules.get(n.module)
    if cfg is None:
        return None
    if n.kind == "resource":
        type_, name = n.name.split(".", 1)
        return cfg.resources[(type_, name)].pos
    if n.kind == "local":
        return cfg.locals[n.name].pos.base
    if n.kind == "var":
        return cfg.variables[n.name].pos
    if n.kind == "output":
        return cfg.outputs[n.name].pos.base
    if n.kind in ("module", "module_end"):
        return cfg.modules[n.name].pos
    return None
