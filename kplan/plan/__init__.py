"""Plans: diff the desired graph against state, and render the result.

``model`` holds the inert plan data; renderers (text, JSON, Markdown) turn a
plan into bytes and never change it. The same inputs give byte-identical
output.
"""
