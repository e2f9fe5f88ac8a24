"""The INI merge behind host_file's ini_overrides (providers/host/ini.py).

kolla-ansible's merge_configs order and key-by-key rule, with the base text's
layout kept so that a plan diff shows only what an override changed.
"""

from __future__ import annotations

import pytest

from kplan_providers.host.ini import IniError, merge, parse, values

BASE = """\
# keystone.conf: written by kplan
[DEFAULT]
debug = False
log_dir = /var/log/kolla/keystone

[token]
provider = fernet
# Seconds a token stays valid.
expiration = 86400

[cache]
backend = dogpile.cache.memcached
"""


def test_a_later_layer_wins_key_by_key_in_kolla_order() -> None:
    merged = merge(
        BASE,
        [
            ("config/global.conf", "[DEFAULT]\ndebug = True\n[token]\nexpiration = 10\n"),
            ("config/keystone.conf", "[token]\nexpiration = 3600\n"),
            ("config/keystone/keystone.conf", "[DEFAULT]\nlog_dir = /srv/log\n"),
            ("config/keystone/ctl1/keystone.conf", "[token]\nexpiration = 7200\n"),
        ],
    )
    got = values(parse(merged.text))
    assert got[("DEFAULT", "debug")] == (("True",),)  # only global.conf sets it
    assert got[("DEFAULT", "log_dir")] == (("/srv/log",),)
    assert got[("token", "expiration")] == (("7200",),)  # the host's file is last
    assert got[("token", "provider")] == (("fernet",),)  # untouched keys stay
    assert merged.sources == {
        ("DEFAULT", "debug"): "config/global.conf",
        ("DEFAULT", "log_dir"): "config/keystone/keystone.conf",
        ("token", "expiration"): "config/keystone/ctl1/keystone.conf",
    }


def test_layout_and_comments_are_kept_keys_replaced_in_place() -> None:
    merged = merge(BASE, [("o", "[token]\nexpiration=3600\n")])
    # Exactly one line differs, where the key stood, spelt as the override wrote it.
    assert merged.text == BASE.replace("expiration = 86400", "expiration=3600")


def test_new_keys_go_to_the_end_of_their_section_new_sections_to_the_end() -> None:
    merged = merge(BASE, [("o", "[oslo_policy]\nenforce_scope = true\n[token]\ncaching = false\n")])
    assert merged.text == BASE.replace(
        "expiration = 86400\n", "expiration = 86400\ncaching = false\n"
    ) + ("\n[oslo_policy]\nenforce_scope = true\n")
    assert list(merged.sources) == [("token", "caching"), ("oslo_policy", "enforce_scope")]


def test_an_override_that_changes_nothing_leaves_the_text_as_it_was() -> None:
    merged = merge(BASE, [("o", "[token]\nexpiration=86400\nprovider   =   fernet\n")])
    assert merged.text == BASE  # same values: the template's spelling stays
    assert merged.sources == {}


def test_no_layers_is_the_base_unchanged() -> None:
    assert merge(BASE, []).text == BASE
    assert merge("a = 1", []).text == "a = 1"  # no newline added either


def test_a_repeated_key_is_one_multi_value_replaced_whole() -> None:
    base = "[DEFAULT]\nx = 1\nother = 2\nx = 3\n"
    merged = merge(base, [("o", "[DEFAULT]\nx = 8\nx = 9\n")])
    # Both of the override's lines stand where the first x stood; the second x is gone.
    assert merged.text == "[DEFAULT]\nx = 8\nx = 9\nother = 2\n"
    # One line in a later layer replaces all of them.
    assert merge(base, [("o", "[DEFAULT]\nx = 5\n")]).text == "[DEFAULT]\nx = 5\nother = 2\n"


def test_continuation_lines_belong_to_their_key() -> None:
    base = "[a]\nk = one\n    two\nz = 1\n"
    assert values(parse(base))[("a", "k")] == (("one", "two"),)
    merged = merge(base, [("o", "[a]\nk = three\n    four\n")])
    assert merged.text == "[a]\nk = three\n    four\nz = 1\n"


def test_mysql_option_files_parse_bare_keys_and_colons() -> None:
    base = "[mysqld]\nskip-name-resolve\nport = 3306\n"
    merged = merge(base, [("config/galera.cnf", "[mysqld]\nmax_connections = 1000\n")])
    assert merged.text == "[mysqld]\nskip-name-resolve\nport = 3306\nmax_connections = 1000\n"
    assert values(parse("[s]\nurl: http://x\n"))[("s", "url")] == (("http://x",),)


def test_keys_before_any_section_merge_with_the_top() -> None:
    merged = merge("top = 1\n[s]\nk = v\n", [("o", "top = 2\nnew = 3\n")])
    assert merged.text == "top = 2\nnew = 3\n[s]\nk = v\n"


def test_sections_repeated_in_the_base_take_new_keys_in_their_last_block() -> None:
    merged = merge("[s]\na = 1\n[t]\nb = 2\n[s]\nc = 3\n", [("o", "[s]\nd = 4\na = 0\n")])
    assert merged.text == "[s]\na = 0\n[t]\nb = 2\n[s]\nc = 3\nd = 4\n"


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("[token]\nexpiration = 1\n[broken\n", 3, "must end with ]"),
        ("[ ]\n", 1, "empty section name"),
        ("[s]\n= value\n", 2, "key is missing"),
        ("  indented = 1\n", 1, "continues no key"),
        ("[s]\na = 1\n\n  orphan\n", 4, "continues no key"),
        # BASE has no keys above its first section: one here is misplaced.
        ("# about debug\ndebug = True\n", 2, "a key before any [section]"),
        ("[DEFAULT]\ndebug True\n", 2, '"debug True" has no ='),
    ],
)
def test_bad_ini_names_the_layer_and_the_line(text: str, line: int, words: str) -> None:
    with pytest.raises(IniError) as caught:
        merge(BASE, [("config/ok.conf", "[DEFAULT]\n"), ("config/keystone.conf", text)])
    assert caught.value.layer == "config/keystone.conf"
    assert caught.value.line == line
    assert words in caught.value.message


def test_a_bad_base_is_an_error_without_a_layer() -> None:
    with pytest.raises(IniError) as caught:
        merge("[s\n", [])
    assert caught.value.layer is None and caught.value.line == 1
