"""A ``host_file`` template with INI override snippets merged over it (``ini_overrides``).

Each override is ``{path, template}``: the name it is shown by (the file it was
read from, e.g. ``config/keystone.conf``) and its Jinja2 source, rendered with
the file's ``vars`` like the template itself, then merged key by key
(:mod:`.ini`). Secrets stay where they were: the real texts are merged for the
content, the masked renderings (every secret as ``(sensitive)``) are merged the
same way for ``content_masked``. An error names the override (or the
template) and the line. The plan notes which override set each key whose value
changes: ``[token] expiration from config/keystone.conf``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kplan.values import SENSITIVE_TEXT, Path, Secret, reveal

from . import ini, template

__all__ = ["Override", "check", "merge_rendered", "notes_for", "overrides_of"]


@dataclass(frozen=True, slots=True)
class Override:
    path: str
    template: Any  # str, or a Secret when the snippet came from a sensitive value


class MergeError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def overrides_of(value: Any) -> list[Override] | str:
    """The overrides in ``value``, or what is wrong with it.

    When the whole list is sensitive, so is every snippet in it: revealing the
    list must not turn its templates into plain text that a plan would show.
    """
    sensitive = isinstance(value, Secret)
    items = reveal(value) if sensitive else value
    if not isinstance(items, list | tuple):
        return "ini_overrides must be a list of {path, template} (as config_overrides() gives)"
    out: list[Override] = []
    for n, item in enumerate(items):
        if not isinstance(item, Mapping) or set(item) != {"path", "template"}:
            return f"ini_overrides[{n}] must be a map with exactly path and template"
        path, source = item["path"], item["template"]
        if not isinstance(path, str) or not isinstance(reveal(source), str):
            return f"ini_overrides[{n}]: path and template must be strings"
        if sensitive and not isinstance(source, Secret):
            source = Secret(source)
        out.append(Override(path, source))
    return out


def check(value: Any) -> list[str]:
    """Problems plan would find without rendering: the shape, and Jinja syntax errors."""
    found = overrides_of(value)
    if isinstance(found, str):
        return [found]
    problems = []
    for o in found:
        err = template.syntax_error(reveal(o.template))
        if err is not None:
            # Jinja quotes the template's own tokens ("got 'hunter2'"): not from a secret.
            said = "syntax error (sensitive)" if isinstance(o.template, Secret) else err.message
            problems.append(_where(o.path, err.line, said))
    return problems


def _where(name: str, line: int | None, message: str) -> str:
    return f"{name}:{line}: {message}" if line else f"{name}: {message}"


def _render(o: Override, variables: Mapping[str, Any]) -> template.Rendered:
    try:
        return template.render(o.template, variables)
    except template.RenderError as err:
        raise MergeError(_where(o.path, err.line, err.message)) from None


def merge_rendered(
    base: template.Rendered, overrides: Sequence[Override], variables: Mapping[str, Any]
) -> tuple[template.Rendered, dict[ini.Key, str]]:
    """The rendered template with the overrides merged; the source of each overridden key."""
    layers = [(o.path, _render(o, variables)) for o in overrides]
    try:
        merged = ini.merge(reveal(base.content), [(n, reveal(r.content)) for n, r in layers])
    except ini.IniError as err:
        name = err.layer
        where = _where(name, err.line, err.message) if name else f"template {err}"
        raise MergeError(f"{where} (not INI)") from None
    secret = isinstance(base.content, Secret) or any(
        isinstance(r.content, Secret) for _, r in layers
    )
    if not secret:
        return template.Rendered(merged.text, None), merged.sources
    masked: str | None = None
    texts = [_shown(base), *(_shown(r) for _, r in layers)]
    if all(t is not None for t in texts):
        try:
            # The masked merge makes the real merge's choices (comparing masked
            # values would tell whether an override equals a secret), and a key
            # the template fills with a secret stays masked whatever an override
            # writes there: a literal password in an override file is not shown.
            shown_layers = [(n, str(t)) for (n, _), t in zip(layers, texts[1:], strict=True)]
            last: dict[ini.Key, ini.Value] = {}
            for _, text in shown_layers:
                last.update(ini.values(ini.parse(text)))
            hide = [
                k
                for k, v in ini.values(ini.parse(str(texts[0]))).items()
                if _masks(v) and k in last and not _masks(last[k])
            ]
            masked = ini.merge(str(texts[0]), shown_layers, only=merged.sources, hide=hide).text
        except ini.IniError:
            masked = None  # a placeholder that broke a line: nothing is shown
    return template.Rendered(Secret(merged.text), masked), merged.sources


def _masks(value: ini.Value) -> bool:
    return any(SENSITIVE_TEXT in part for line in value for part in line)


def _shown(r: template.Rendered) -> str | None:
    return r.masked if isinstance(r.content, Secret) else r.content


def notes_for(sources: Mapping[ini.Key, str], planned: str, prior: Any) -> list[tuple[Path, str]]:
    """A note for each overridden key whose value differs from the prior content's."""
    before: dict[ini.Key, ini.Value] = {}
    old = reveal(prior)
    if isinstance(old, str):
        try:
            before = ini.values(ini.parse(old))
        except ini.IniError:
            before = {}
    after = ini.values(ini.parse(planned))
    return [
        (("content",), _note(key, layer))
        for key, layer in sources.items()
        if before.get(key) != after.get(key)
    ]


def dry_notes(
    overrides: Sequence[Override], variables: Mapping[str, Any]
) -> list[tuple[Path, str]]:
    """While some value is unknown: the keys each override sets, the last one winning."""
    sources: dict[ini.Key, str] = {}
    for o in overrides:
        text = template.dry_render(reveal(o.template), variables)
        if text is None:
            continue
        try:
            keys = ini.values(ini.parse(text))
        except ini.IniError:
            continue
        for key in keys:
            sources.pop(key, None)
            sources[key] = o.path
    return [(("content",), _note(k, layer)) for k, layer in sources.items()]


def _note(key: ini.Key, layer: str) -> str:
    section, name = key
    return f"[{section}] {name} from {layer}" if section else f"{name} from {layer}"
