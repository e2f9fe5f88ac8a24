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
   working folder for PostgreSQL (backend.key_dir). It is made atomically
   (written to a temporary file, then hard-linked into place), so a reader never
   sees a partial key and the loser of a race uses the winner's key.

:func:`find_key` checks the form of the selected key (without using it), so a
malformed key is refused before anything else happens; every such message
lists :data:`ACCEPTED_FORMATS`.

A key never appears in an error message, a log or the state itself.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from kplan.diagnostics import Diagnostic, KplanError
from kplan.fileio import sync_dir

__all__ = [
    "ACCEPTED_FORMATS",
    "DEFAULT_KEY_FILE",
    "ENV_KEY",
    "ENV_KEY_FILE",
    "ENV_PASSPHRASE",
    "Cipher",
    "KeySource",
    "SecretBox",
    "find_key",
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


# What every "malformed key" message says: the accepted sources and their formats.
ACCEPTED_FORMATS: Final = (
    "Accepted keys (first set wins):\n"
    f"  {ENV_KEY}         the base64 of {_KEY_LEN} random bytes (44 characters)\n"
    f"  {ENV_KEY_FILE}    the path of a file holding that base64 text\n"
    f"  {ENV_PASSPHRASE}  a passphrase: UTF-8 text, not only white space\n"
    f"  {DEFAULT_KEY_FILE} beside the state   that base64 text; made by kplan for a new state\n"
    "Make a key with\n"
    "  python -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())'"
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


def _malformed(where: str, why: str) -> KplanError:
    return KplanError(
        Diagnostic.error(
            f"the state key in {where} is malformed: {why}",
            ACCEPTED_FORMATS,
            code="state-key-malformed",
        )
    )


def _decode_key(text: str, where: str) -> bytes:
    if not text.strip():
        raise _malformed(where, "it is empty")
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise _malformed(where, "it is not base64") from None
    if len(key) != _KEY_LEN:
        raise _malformed(where, f"it decodes to {len(key)} bytes, not {_KEY_LEN}")
    return key


def _read_key_file(path: Path, where: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KplanError(
            Diagnostic.error(
                f"cannot read the state key file {path}: {exc.strerror or exc}",
                _KEY_OPTIONS,
                code="state-key-missing",
            )
        ) from None
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise _malformed(where, "it is not ASCII text") from None
    return _decode_key(text, where)


def _check_passphrase(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # os.environ holds bytes that are not UTF-8 as surrogate escapes.
        raise _malformed(ENV_PASSPHRASE, "it is not UTF-8 text") from None
    if not text.strip():
        raise _malformed(ENV_PASSPHRASE, "it is only white space")
    return text


def _derive(passphrase: str, salt: bytes) -> bytes:
    kdf = Scrypt(salt=salt, length=_KEY_LEN, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P)
    return kdf.derive(passphrase.encode("utf-8"))


def _create_key_file(path: Path) -> bytes:
    """Make the default key file atomically; if another kplan (or thread) made it first,
    use its key.

    The key is written and synced to a temporary file beside ``path``, then
    hard-linked to ``path``: link(2) fails when ``path`` exists, and a reader never
    sees a file that is not complete. On a file system without hard links, the
    temporary file is renamed instead (a rename replaces a file made in between:
    the state's key check then refuses the loser's key rather than mixing keys).
    """
    text = generate_key()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".state.key-", dir=path.parent)  # mode 0600
    except OSError as exc:
        raise _cannot_create(path, exc) from None
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(text + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return _read_key_file(path, str(path))
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise _cannot_create(path, exc) from None
            if path.exists():
                return _read_key_file(path, str(path))
            os.rename(tmp, path)
        sync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return base64.b64decode(text)


_NO_HARD_LINKS: Final = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV})


def _cannot_create(path: Path, exc: OSError) -> KplanError:
    return KplanError(
        Diagnostic.error(
            f"cannot create the state key file {path}: {exc.strerror or exc}",
            _KEY_OPTIONS,
            code="state-key-missing",
        )
    )


@dataclass(frozen=True, slots=True)
class KeySource:
    """Where this run's key comes from, its form already checked (see :func:`find_key`).

    ``key`` is set for ``KPLAN_STATE_KEY``, a key file, or a default key file that
    exists; ``passphrase`` for ``KPLAN_STATE_PASSPHRASE``; neither when the
    default key file does not exist yet.
    """

    kind: str  # ENV_KEY, ENV_KEY_FILE, ENV_PASSPHRASE or DEFAULT_KEY_FILE
    where: str  # for messages: the variable, or the key file's path
    path: Path | None = None
    key: bytes | None = field(default=None, repr=False)
    passphrase: str | None = field(default=None, repr=False)

    @property
    def missing(self) -> bool:
        """The default key file, which does not exist (yet)."""
        return self.key is None and self.passphrase is None

    def cipher(self, *, salt: bytes | None, create: bool) -> Cipher:
        """The cipher of this key; ``create`` makes a missing default key file."""
        if self.key is not None:
            return Cipher(self.key, self.where)
        if self.passphrase is not None:
            if not salt:
                raise KplanError("the state has no key-derivation salt for KPLAN_STATE_PASSPHRASE")
            return Cipher(_derive(self.passphrase, salt), ENV_PASSPHRASE)
        assert self.path is not None
        if create:
            return Cipher(_create_key_file(self.path), str(self.path))
        raise KplanError(
            Diagnostic.error(
                f"no key to decrypt the state: {self.path} does not exist",
                _KEY_OPTIONS,
                code="state-key-missing",
            )
        )


def find_key(environ: Mapping[str, str], state_dir: str) -> KeySource:
    """The key source this environment selects, first match wins (see the module
    docstring); its form is checked now, so a malformed key is refused before it is
    needed. KplanError (code ``state-key-malformed`` or ``state-key-missing``)."""
    if environ.get(ENV_KEY):
        return KeySource(ENV_KEY, ENV_KEY, key=_decode_key(environ[ENV_KEY], ENV_KEY))
    if environ.get(ENV_KEY_FILE):
        path = Path(environ[ENV_KEY_FILE]).expanduser()
        where = f"{ENV_KEY_FILE} ({path})"
        return KeySource(ENV_KEY_FILE, where, path, key=_read_key_file(path, where))
    if environ.get(ENV_PASSPHRASE):
        passphrase = _check_passphrase(environ[ENV_PASSPHRASE])
        return KeySource(ENV_PASSPHRASE, ENV_PASSPHRASE, passphrase=passphrase)
    path = Path(state_dir) / DEFAULT_KEY_FILE
    if path.exists():
        return KeySource(DEFAULT_KEY_FILE, str(path), path, key=_read_key_file(path, str(path)))
    return KeySource(DEFAULT_KEY_FILE, str(path), path)


def load_cipher(
    *, state_dir: str, salt: bytes | None, environ: Mapping[str, str], create: bool
) -> Cipher:
    """Find the state key (see the module docstring for the order) and build a Cipher."""
    return find_key(environ, state_dir).cipher(salt=salt, create=create)
