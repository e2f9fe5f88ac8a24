"""Encryption of sensitive state values at rest (AES-256-GCM).

A :class:`Cipher` turns bytes into a compact text token ``v1:<base64 nonce+ct>``
and back. Every token is bound to *associated data* (the workspace and the
resource address), so a token copied to another row does not decrypt.

:func:`load_cipher` finds the key, first match wins:

1. ``KPLAN_STATE_KEY``: the base64 of 32 random bytes;
2. ``KPLAN_STATE_KEY_FILE``: a file holding that base64 text;
3. ``KPLAN_STATE_PASSPHRASE``: a passphrase, stretched with scrypt
   (n=2**15, r=8, p=1) and the per-state salt kept in the state's meta table;
4. ``<key dir>/state.key``: the default key file, created (mode 0600) for a
   new state. The key dir is the SQLite file's folder, or ``.kplan`` in the
   working folder for PostgreSQL (backend.key_dir).

A key never appears in an error message, a log or the state itself.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from kplan.diagnostics import Diagnostic, KplanError

__all__ = [
    "DEFAULT_KEY_FILE",
    "ENV_KEY",
    "ENV_KEY_FILE",
    "ENV_PASSPHRASE",
    "Cipher",
    "SecretBox",
    "generate_key",
    "load_cipher",
]

ENV_KEY: Final = "KPLAN_STATE_KEY"
ENV_KEY_FILE: Final = "KPLAN_STATE_KEY_FILE"
ENV_PASSPHRASE: Final = "KPLAN_STATE_PASSPHRASE"
DEFAULT_KEY_FILE: Final = "state.key"

_PREFIX: Final = "v1:"
_NONCE_LEN: Final = 12
_KEY_LEN: Final = 32
_SCRYPT_N: Final = 2**15
_SCRYPT_R: Final = 8
_SCRYPT_P: Final = 1

_KEY_OPTIONS: Final = (
    f"Set {ENV_KEY} (the base64 of 32 random bytes), {ENV_KEY_FILE} (a file holding it) "
    f"or {ENV_PASSPHRASE}, or restore the key file."
)


class SecretBox(Protocol):
    """What the codec needs: anything that encrypts and decrypts tokens."""

    def encrypt(self, plaintext: bytes, aad: bytes) -> str: ...

    def decrypt(self, token: str, aad: bytes) -> bytes: ...


def _wrong_key(reason: str) -> KplanError:
    return KplanError(
        Diagnostic.error(
            f"cannot decrypt a value in the state: {reason}",
            "The state was written with a different key, or the value was altered.\n"
            "Provide the key that wrote it. " + _KEY_OPTIONS,
            code="state-wrong-key",
        )
    )


class Cipher:
    """AES-256-GCM with a random 96-bit nonce per value."""

    __slots__ = ("_aead", "source")

    def __init__(self, key: bytes, source: str = "") -> None:
        if len(key) != _KEY_LEN:
            raise ValueError(f"a state key has {_KEY_LEN} bytes, not {len(key)}")
        self._aead = AESGCM(key)
        # Where the key came from, for messages ("KPLAN_STATE_KEY", a file path, ...).
        self.source = source

    def __repr__(self) -> str:
        return f"Cipher(source={self.source!r})"

    def encrypt(self, plaintext: bytes, aad: bytes) -> str:
        nonce = os.urandom(_NONCE_LEN)
        sealed = self._aead.encrypt(nonce, plaintext, aad)
        return _PREFIX + base64.b64encode(nonce + sealed).decode("ascii")

    def decrypt(self, token: str, aad: bytes) -> bytes:
        if not token.startswith(_PREFIX):
            raise _wrong_key("an encrypted value has an unknown format")
        try:
            raw = base64.b64decode(token[len(_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            raise _wrong_key("an encrypted value is not valid base64") from None
        if len(raw) < _NONCE_LEN + 16:
            raise _wrong_key("an encrypted value is truncated")
        try:
            return self._aead.decrypt(raw[:_NONCE_LEN], raw[_NONCE_LEN:], aad)
        except InvalidTag:
            src = f" (key from {self.source})" if self.source else ""
            raise _wrong_key(f"wrong state key{src}") from None


def generate_key() -> str:
    """A new random key, as the base64 text that key files and KPLAN_STATE_KEY hold."""
    return base64.b64encode(os.urandom(_KEY_LEN)).decode("ascii")


def _decode_key(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != _KEY_LEN:
        raise KplanError(
            Diagnostic.error(
                f"the state key in {where} is malformed",
                f"Expected the base64 of {_KEY_LEN} random bytes, e.g. the output of\n"
                "  python -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())'",
                code="state-key-malformed",
            )
        )
    return key


def _read_key_file(path: Path, where: str) -> bytes:
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise KplanError(
            Diagnostic.error(
                f"cannot read the state key file {path}: {reason}",
                _KEY_OPTIONS,
                code="state-key-missing",
            )
        ) from None
    return _decode_key(text, where)


def _derive(passphrase: str, salt: bytes) -> bytes:
    kdf = Scrypt(salt=salt, length=_KEY_LEN, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P)
    return kdf.derive(passphrase.encode("utf-8"))


def _create_key_file(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = generate_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another kplan created it a moment ago: use theirs.
        return _read_key_file(path, str(path))
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(text + "\n")
        f.flush()
        os.fsync(f.fileno())
    return base64.b64decode(text)


def load_cipher(
    *, state_dir: str, salt: bytes | None, environ: Mapping[str, str], create: bool
) -> Cipher:
    """Find the state key (see the module docstring for the order) and build a Cipher."""
    if environ.get(ENV_KEY):
        return Cipher(_decode_key(environ[ENV_KEY], ENV_KEY), ENV_KEY)
    if environ.get(ENV_KEY_FILE):
        path = Path(environ[ENV_KEY_FILE]).expanduser()
        return Cipher(_read_key_file(path, f"{ENV_KEY_FILE} ({path})"), str(path))
    if environ.get(ENV_PASSPHRASE):
        if not salt:
            raise KplanError("the state has no key-derivation salt for KPLAN_STATE_PASSPHRASE")
        return Cipher(_derive(environ[ENV_PASSPHRASE], salt), ENV_PASSPHRASE)
    path = Path(state_dir) / DEFAULT_KEY_FILE
    if path.exists():
        return Cipher(_read_key_file(path, str(path)), str(path))
    if create:
        return Cipher(_create_key_file(path), str(path))
    raise KplanError(
        Diagnostic.error(
            f"no key to decrypt the state: {path} does not exist",
            _KEY_OPTIONS,
            code="state-key-missing",
        )
    )
