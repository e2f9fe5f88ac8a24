"""host_file's ini_overrides: snippets rendered with the file's vars, merged over the
template, secrets masked, errors at FILE:LINE, and notes of where changed keys come from."""

from __future__ import annotations

from typing import Any

from kplan.provider_api import PlanRequest, PlanResponse, ValidateRequest
from kplan.values import UNKNOWN, Secret
from kplan_providers.host import HostProvider

TEMPLATE = """\
[DEFAULT]
debug = False

[database]
connection = mysql+pymysql://keystone:{{ db_password }}@{{ db_host }}/keystone

[token]
expiration = {{ expiration }}
"""


def _plan(config: dict[str, Any], prior: Any = None) -> PlanResponse:
    return HostProvider().plan(PlanRequest("host_file", "host_file.x", "h1", prior, config))


def _config(overrides: list[dict[str, Any]], **variables: Any) -> dict[str, Any]:
    return {
        "path": "/etc/kolla/keystone/keystone.conf",
        "template": TEMPLATE,
        "vars": {"db_password": "pw", "db_host": "db", "expiration": 86400, **variables},
        "ini_overrides": overrides,
    }


def test_snippets_are_jinja_rendered_with_the_files_vars_and_merged() -> None:
    resp = _plan(
        _config(
            [
                {"path": "config/global.conf", "template": "[DEFAULT]\ndebug = True\n"},
                {
                    "path": "config/keystone.conf",
                    "template": "[token]\nexpiration = {{ expiration // 24 }}\n",
                },
            ]
        )
    )
    assert resp.diagnostics == []
    assert resp.planned["content"] == (
        TEMPLATE.replace("debug = False", "debug = True")
        .replace("{{ db_password }}@{{ db_host }}", "pw@db")
        .replace("{{ expiration }}", "3600")
    )
    assert [text for _, text in resp.notes] == [
        "[DEFAULT] debug from config/global.conf",
        "[token] expiration from config/keystone.conf",
    ]
    assert all(path == ("content",) for path, _ in resp.notes)


def test_notes_name_only_keys_whose_value_changes() -> None:
    overrides = [{"path": "config/keystone.conf", "template": "[DEFAULT]\ndebug = True\n"}]
    first = _plan(_config(overrides))
    prior = dict(first.planned)
    overrides.append({"path": "config/keystone/h1/keystone.conf", "template": "[token]\nx = 1\n"})
    again = _plan(_config(overrides), prior)
    assert [text for _, text in again.notes] == ["[token] x from config/keystone/h1/keystone.conf"]
    assert _plan(_config(overrides), dict(again.planned)).notes == []


def test_a_secret_in_a_snippet_stays_masked() -> None:
    resp = _plan(
        _config(
            [
                {
                    "path": "config/keystone.conf",
                    "template": "[database]\nconnection = mysql://k:{{ db_password }}@other/k\n",
                }
            ],
            db_password=Secret("s3cr3t"),
        )
    )
    assert resp.diagnostics == []
    content, masked = resp.planned["content"], resp.planned["content_masked"]
    assert isinstance(content, Secret)
    assert "connection = mysql://k:s3cr3t@other/k" in content.reveal()
    assert "connection = mysql://k:(sensitive)@other/k" in masked
    assert "s3cr3t" not in masked
    assert "s3cr3t" not in repr(resp.notes)


def test_a_snippet_that_fails_to_render_names_its_file_and_line() -> None:
    resp = _plan(
        _config([{"path": "config/keystone.conf", "template": "[token]\nx = 1\ny = {{ nope }}\n"}])
    )
    assert [d.attribute for d in resp.diagnostics] == [("ini_overrides",)]
    assert resp.diagnostics[0].summary.startswith("config/keystone.conf:3: ")
    assert "nope" in resp.diagnostics[0].summary


def test_a_snippet_that_is_not_ini_names_its_file_and_line() -> None:
    resp = _plan(_config([{"path": "config/keystone.conf", "template": "[token]\n[oops\n"}]))
    assert len(resp.diagnostics) == 1
    summary = resp.diagnostics[0].summary
    assert summary.startswith("config/keystone.conf:2: a section header must end with ]")
    assert "(not INI)" in summary


def test_validate_finds_jinja_syntax_errors_and_bad_shapes() -> None:
    p = HostProvider()
    bad = _config([{"path": "config/glance.conf", "template": "[a]\nb = {{ x + }}\n"}])
    diags = p.validate(ValidateRequest("host_file", bad)).diagnostics
    assert [d.summary.split(": ")[0] for d in diags] == ["config/glance.conf:2"]
    wrong = _config([{"file": "x"}])
    diags = p.validate(ValidateRequest("host_file", wrong)).diagnostics
    assert "exactly path and template" in diags[0].summary
    content = {"path": "/x", "content": "a = 1\n", "ini_overrides": []}
    diags = p.validate(ValidateRequest("host_file", content)).diagnostics
    assert [d.summary for d in diags] == ["ini_overrides is used only with template"]


def test_with_a_value_unknown_the_notes_say_which_keys_the_overrides_set() -> None:
    resp = _plan(
        _config(
            [
                {"path": "config/global.conf", "template": "[token]\nexpiration = 1\n"},
                {"path": "config/keystone.conf", "template": "[token]\nexpiration = 3600\n"},
            ],
            db_password=UNKNOWN,
        )
    )
    assert resp.planned["content"] is UNKNOWN
    assert [text for _, text in resp.notes] == ["[token] expiration from config/keystone.conf"]


def test_no_overrides_is_the_template_alone() -> None:
    plain = _plan(_config([]))
    assert (
        plain.planned["content"] == _plan({**_config([]), "ini_overrides": None}).planned["content"]
    )
    assert plain.notes == []


def test_a_literal_over_a_secret_key_is_not_shown() -> None:
    # An operator's override file with a literal password, over a key the
    # template fills with a secret: the masked content never shows the literal,
    # whether or not it equals the secret. (The snippet itself is configuration
    # written in plain text, like a template: docs/overrides.md says so.)
    for literal in ("literalpw", "s3cr3t"):
        snippet = f"[database]\nconnection = mysql://k:{literal}@other/k\n"
        resp = _plan(
            _config(
                [{"path": "config/keystone.conf", "template": snippet}],
                db_password=Secret("s3cr3t"),
            )
        )
        assert resp.diagnostics == []
        masked = resp.planned["content_masked"]
        assert literal not in masked
        assert "[database]\nconnection = (sensitive)\n" in masked, masked
        assert f"mysql://k:{literal}@other/k" in resp.planned["content"].reveal()


def test_a_sensitive_list_of_snippets_keeps_them_secret() -> None:
    snippet = "[database]\nconnection = mysql://u:topsecret@h/db\n"
    resp = _plan(_config(Secret([{"path": "config/keystone.conf", "template": snippet}])))
    assert resp.diagnostics == []
    content = resp.planned["content"]
    assert isinstance(content, Secret) and "topsecret" in content.reveal()
    assert "topsecret" not in repr(resp.planned.get("content_masked"))
    assert "topsecret" not in repr(resp.notes)


def test_a_syntax_error_in_a_secret_snippet_does_not_quote_it() -> None:
    snippet = Secret("[database]\npassword = {{ hunter2 hunter2 }}\n")
    resp = HostProvider().validate(
        ValidateRequest("host_file", _config([{"path": "config/k.conf", "template": snippet}]))
    )
    messages = " ".join(str(d) for d in resp.diagnostics)
    assert "config/k.conf:2" in messages and "hunter2" not in messages
