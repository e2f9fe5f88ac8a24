"""The executor: makes a plan real.

``executor`` runs an apply: deletes first, then the configuration walk whose
changed instances become one instance graph (``schedule``: at most N in
flight in all, each waiting only for its own dependencies and, in a rolling
block, the batch before); ``replan`` re-plans each with known values and
checks it against the reviewed plan; ``change`` applies one and records it
in state before anything that depends on it starts. On a failure nothing new
starts, work in flight finishes, and the result says what is done and not.
Never here: rendering, CLI output, or anything a provider type knows.
"""
