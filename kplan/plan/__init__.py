"""Plans: diff the desired graph against state, and render the result.

``model`` holds the inert plan data; renderers (text, JSON, Markdown) turn a
plan into bytes and never change it. The same inputs give byte-identical
output. ``validate`` walks the same graph with every value unknown and only
asks providers to validate: it never reads state or contacts a host.
"""
