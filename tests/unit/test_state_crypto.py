"""The state cipher and the attribute codec."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from kplan.diagnostics import KplanError
from kplan.state.codec import decode_attributes, encode_attributes, encode_value
from kplan.state.crypto import Cipher, generate_key, load_cipher
from kplan.values import UNKNOWN, Secret

KEY = generate_key()
AAD = b"default\x00docker_container.x"


def cipher() -> Cipher:
    return load_cipher(
        state_dir="/nonexistent", salt=None, environ={"KPLAN_STATE_KEY": KEY}, create=False
    )


def test_cipher_round_trip_and_token_shape() -> None:
    c = cipher()
    token = c.encrypt(b"hello", AAD)
    assert token.startswith("v1:")
    assert "hello" not in token
    assert c.decrypt(token, AAD) == b"hello"
    # A fresh nonce each time.
    assert c.encrypt(b"hello", AAD) != token


def test_token_bound_to_its_row() -> None:
    c = cipher()
    token = c.encrypt(b"hello", AAD)
    with pytest.raises(KplanError, match="wrong state key"):
        c.decrypt(token, b"default\x00docker_container.y")


def test_wrong_key_is_a_clear_error_with_hint() -> None:
    token = cipher().encrypt(b"hello", AAD)
    other = Cipher(os.urandom(32), "KPLAN_STATE_KEY")
    with pytest.raises(KplanError) as err:
        other.decrypt(token, AAD)
    diag = err.value.diagnostics[0]
    assert "wrong state key" in diag.summary
    assert "KPLAN_STATE_PASSPHRASE" in diag.detail
    assert diag.code == "state-wrong-key"


@pytest.mark.parametrize("token", ["v2:abc", "v1:!!!", "v1:" + base64.b64encode(b"x").decode()])
def test_malformed_token(token: str) -> None:
    with pytest.raises(KplanError, match="cannot decrypt"):
        cipher().decrypt(token, AAD)


def test_malformed_env_key() -> None:
    with pytest.raises(KplanError, match="KPLAN_STATE_KEY is malformed"):
        load_cipher(state_dir="/x", salt=None, environ={"KPLAN_STATE_KEY": "short"}, create=True)


def test_key_file_from_env(tmp_path: Path) -> None:
    key_file = tmp_path / "k"
    key_file.write_text(KEY + "\n")
    c = load_cipher(
        state_dir=str(tmp_path),
        salt=None,
        environ={"KPLAN_STATE_KEY_FILE": str(key_file)},
        create=False,
    )
    assert cipher().decrypt(c.encrypt(b"x", AAD), AAD) == b"x"
    with pytest.raises(KplanError, match="cannot read the state key file"):
        load_cipher(
            state_dir=str(tmp_path),
            salt=None,
            environ={"KPLAN_STATE_KEY_FILE": str(tmp_path / "missing")},
            create=True,
        )


def test_env_key_wins_over_passphrase() -> None:
    env = {"KPLAN_STATE_KEY": KEY, "KPLAN_STATE_PASSPHRASE": "pw"}
    c = load_cipher(state_dir="/x", salt=b"s" * 16, environ=env, create=False)
    assert c.source == "KPLAN_STATE_KEY"


def test_passphrase_is_salted() -> None:
    env = {"KPLAN_STATE_PASSPHRASE": "correct horse"}
    a = load_cipher(state_dir="/x", salt=b"a" * 16, environ=env, create=False)
    a2 = load_cipher(state_dir="/x", salt=b"a" * 16, environ=env, create=False)
    b = load_cipher(state_dir="/x", salt=b"b" * 16, environ=env, create=False)
    token = a.encrypt(b"v", AAD)
    assert a2.decrypt(token, AAD) == b"v"
    with pytest.raises(KplanError, match="wrong state key"):
        b.decrypt(token, AAD)


def test_default_key_file_created_private(tmp_path: Path) -> None:
    with pytest.raises(KplanError) as err:
        load_cipher(state_dir=str(tmp_path), salt=None, environ={}, create=False)
    assert "KPLAN_STATE_KEY" in str(err.value) and "state.key" in str(err.value)
    c = load_cipher(state_dir=str(tmp_path), salt=None, environ={}, create=True)
    path = tmp_path / "state.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_cipher(state_dir=str(tmp_path), salt=None, environ={}, create=False)
    assert again.decrypt(c.encrypt(b"x", AAD), AAD) == b"x"


def test_codec_round_trip_nested_secrets() -> None:
    attrs = {
        "image": "keystone:zed",
        "env": {"DB_PASSWORD": Secret("pw-123"), "DEBUG": False},
        "volumes": ("a", "b"),
        "nested": [1, {"k": Secret({"deep": [1, 2]})}],
    }
    text = encode_attributes(attrs, cipher(), AAD)
    assert "pw-123" not in text and "deep" not in text
    data = json.loads(text)
    assert list(data) == sorted(data)
    assert ", " not in text
    back = decode_attributes(text, cipher(), AAD)
    assert back == {**attrs, "volumes": ["a", "b"]}
    assert isinstance(back["env"]["DB_PASSWORD"], Secret)
    assert back["env"]["DB_PASSWORD"].reveal() == "pw-123"
    assert back["nested"][1]["k"].reveal() == {"deep": [1, 2]}


def test_codec_without_secrets_is_plain_json() -> None:
    text, has_secrets = encode_value({"b": 1, "a": [None, 1.5]}, cipher(), AAD)
    assert text == '{"a":[null,1.5],"b":1}'
    assert not has_secrets


def test_codec_refuses_unknown_and_reserved_key() -> None:
    with pytest.raises(ValueError, match="unknown"):
        encode_attributes({"a": UNKNOWN}, cipher(), AAD)
    with pytest.raises(ValueError, match="unknown"):
        encode_attributes({"a": Secret([UNKNOWN])}, cipher(), AAD)
    with pytest.raises(ValueError, match="reserved"):
        encode_attributes({"a": {"__kplan_secret__": "x"}}, cipher(), AAD)
    with pytest.raises(ValueError, match="not a JSON value"):
        encode_attributes({"a": object()}, cipher(), AAD)
    # The marker inside a string is only text.
    text = encode_attributes({"a": '"__kplan_secret__":'}, cipher(), AAD)
    assert decode_attributes(text, cipher(), AAD) == {"a": '"__kplan_secret__":'}


def test_codec_token_moved_to_other_row_fails() -> None:
    text = encode_attributes({"pw": Secret("x")}, cipher(), AAD)
    with pytest.raises(KplanError, match="wrong state key"):
        decode_attributes(text, cipher(), b"other\x00docker_container.x")
