"""The state's key, loaded on first use and checked against the state.

Loading is lazy: a state without secrets never needs a key, and a passphrase
costs a scrypt run (tens of milliseconds) that opening a state must not pay.
On first use the key is checked against a *key check* token kept in the meta
table (written by the first key ever used), so a wrong key fails at once
with a clear message rather than at the first secret.
"""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final

from kplan.diagnostics import Diagnostic, KplanError
from kplan.state.codec import decode_value
from kplan.state.crypto import (
    DEFAULT_KEY_FILE,
    ENV_KEY,
    ENV_KEY_FILE,
    ENV_PASSPHRASE,
    Cipher,
    KeySource,
    find_key,
)

__all__ = ["META_KEY_CHECK", "META_KEY_SOURCE", "META_SALT", "LazyCipher"]

META_SALT: Final = "kplan.state.kdf_salt"
META_KEY_CHECK: Final = "kplan.state.key_check"
META_KEY_SOURCE: Final = "kplan.state.key_source"
_CHECK_PLAINTEXT: Final = b"kplan state key check v1"
_CHECK_AAD: Final = b"kplan.state.key_check"

# meta_setdefault(key, value) -> the value stored (the given one, or one already there)
SetDefault = Callable[[str, str], str]
GetMeta = Callable[[str], "str | None"]
# sample(): one encoded value of the workspace that holds a sealed secret, and its
# associated data; None when it holds none.
Sample = Callable[[], "tuple[str, bytes] | None"]


def key_source_kind(environ: Mapping[str, str]) -> str:
    """Which of the key sources this environment selects (recorded, never the key)."""
    for name in (ENV_KEY, ENV_KEY_FILE, ENV_PASSPHRASE):
        if environ.get(name):
            return name
    return DEFAULT_KEY_FILE


class LazyCipher:
    """Implements :class:`~kplan.state.crypto.SecretBox`; loads the key on first use.

    Thread-safe: the apply's workers share one cipher, loaded (and, for a new
    state, created) once. :meth:`prepare` resolves the key up front, so that a
    malformed or wrong key is refused before a command changes anything.
    """

    def __init__(
        self,
        *,
        key_dir: str,
        environ: Mapping[str, str],
        create: bool,
        get_meta: GetMeta,
        meta_setdefault: SetDefault,
        sample: Sample | None = None,
    ) -> None:
        self._key_dir = key_dir
        self._environ = dict(environ)
        self._create = create
        self._get_meta = get_meta
        self._setdefault = meta_setdefault
        self._sample = sample or (lambda: None)
        self._cipher: Cipher | None = None
        self._lock = threading.Lock()

    def encrypt(self, plaintext: bytes, aad: bytes) -> str:
        return self.cipher().encrypt(plaintext, aad)

    def decrypt(self, token: str, aad: bytes) -> bytes:
        return self.cipher().decrypt(token, aad)

    def cipher(self) -> Cipher:
        cipher = self._cipher
        if cipher is None:
            with self._lock:
                if self._cipher is None:
                    self._cipher = self._load(self._create)
                cipher = self._cipher
        return cipher

    def prepare(self, *, create: bool) -> None:
        """Resolve the key now: refuse a malformed key, a missing one the state needs,
        or one that does not match the state (its key check, or else one of its sealed
        values). With ``create``, a missing default key file is made now (before an
        apply that may seal secrets). A state that never held a secret needs no key:
        without ``create``, only the form of a key given is checked."""
        with self._lock:
            if self._cipher is not None:
                return
            source = find_key(self._environ, self._key_dir)
            if create or self._get_meta(META_KEY_CHECK) is not None or self._sample():
                self._cipher = self._load(create, source)

    def _load(self, create: bool, source: KeySource | None = None) -> Cipher:
        source = source or find_key(self._environ, self._key_dir)
        check = self._get_meta(META_KEY_CHECK)
        salt_text = self._get_meta(META_SALT)
        if salt_text is None:
            salt_text = self._setdefault(META_SALT, base64.b64encode(os.urandom(16)).decode())
        # A state written before it kept a key check (or whose check was lost): the key
        # is proved on one of its sealed values before the check is recorded, and a
        # state that holds sealed values never gets a new key file.
        sample = self._sample() if check is None else None
        cipher = source.cipher(
            salt=base64.b64decode(salt_text), create=create and check is None and sample is None
        )
        if check is None:
            if sample is not None:
                try:
                    decode_value(sample[0], cipher, sample[1])
                except KplanError:
                    raise self._mismatch(cipher) from None
            check = self._setdefault(META_KEY_CHECK, cipher.encrypt(_CHECK_PLAINTEXT, _CHECK_AAD))
            self._setdefault(META_KEY_SOURCE, key_source_kind(self._environ))
        try:
            ok = cipher.decrypt(check, _CHECK_AAD) == _CHECK_PLAINTEXT
        except KplanError:
            ok = False
        if not ok:
            raise self._mismatch(cipher)
        return cipher

    def _mismatch(self, cipher: Cipher) -> KplanError:
        written = self._get_meta(META_KEY_SOURCE) or "an unknown source"
        return KplanError(
            Diagnostic.error(
                f"wrong state key: the key from {cipher.source} does not match this state",
                f"The state was first encrypted with a key from {written}.\n"
                f"Provide that key through {ENV_KEY}, {ENV_KEY_FILE}, {ENV_PASSPHRASE}\n"
                f"or the key file {Path(self._key_dir) / DEFAULT_KEY_FILE}.",
                code="state-wrong-key",
            )
        )
