"""The executor: makes a plan real.

Walks the changes in dependency order with bounded parallelism; records each
finished change in state before the next starts; on a failure starts nothing
new, lets work in flight finish and reports what is done and what is not.
"""
