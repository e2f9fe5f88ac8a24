"""The dependency graph and its walk.

Nodes are configuration objects (variables, locals, resources, module calls,
outputs); edges come from references found statically. The walker visits
nodes in dependency order with bounded parallelism and a deterministic
order; a cycle is reported with the path that closes it.
"""
