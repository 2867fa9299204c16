"""Secrets at rest on the config log: AES-256-GCM with key ids, so keys can be rotated.

Webhook signing secrets must be kept (the alerter signs every delivery with them) but must not
be readable by whoever can read ``trulayer.config`` or its backups. The control-engine seals a
secret before appending it; the alerter (and the control-engine's test send) open it in memory
when signing. Nothing else holds the key.

* Stored form: ``enc:v1:<key id>:<base64url(12-byte nonce ‖ ciphertext ‖ tag)>``.
* The additional authenticated data is a *context* naming the owner (``webhook:<tenant>:<id>``),
  so a sealed value copied onto another webhook or tenant does not open.
* Keys (setting ``CONFIG_SECRET_KEYS``): ``kid:base64key[,kid:base64key...]``, 32-byte keys;
  the first one seals, every listed one opens. Rotation: put a new key first (``trulayer
  secrets generate-key --kid k2``) on the control-engine and the alerter, run ``trulayer secrets
  reseal``, and drop the old key once the log has compacted the old records away.
* A value without the ``enc:`` prefix is a plaintext secret written before encryption existed:
  it still opens (and ``trulayer secrets reseal`` seals it).
"""

from __future__ import annotations

import base64
import binascii
import os
import re

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "enc:v1:"
_KID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_NONCE_BYTES = 12


class SecretUnavailableError(Exception):
    """A sealed secret cannot be opened: unknown key id, wrong key, or tampered value."""


def generate_key_spec(kid: str = "k1") -> str:
    """A fresh ``kid:base64key`` entry (what the local stack keeps in its data directory)."""
    if not _KID.match(kid):
        raise ValueError(f"key id {kid!r}: use 1 to 32 letters, digits, '-' or '_'")
    return f"{kid}:{base64.urlsafe_b64encode(os.urandom(32)).decode()}"


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SecretBox:
    def __init__(self, keys: dict[str, bytes], current: str) -> None:
        if current not in keys:
            raise ValueError("the current key id must be one of the keys")
        self._keys = {kid: AESGCM(key) for kid, key in keys.items()}
        self.current = current

    @classmethod
    def parse(cls, spec: str) -> SecretBox:
        """``"k2:<base64 32 bytes>,k1:<base64 32 bytes>"`` → a box sealing with ``k2``.

        Raises ``ValueError`` with a message naming the bad entry (never echoing a key).
        """
        keys: dict[str, bytes] = {}
        order: list[str] = []
        for position, raw in enumerate(spec.split(","), start=1):
            entry = raw.strip()
            if not entry:
                continue
            kid, sep, encoded = entry.partition(":")
            if not sep or not _KID.match(kid):
                raise ValueError(f"CONFIG_SECRET_KEYS entry {position}: expected '<key id>:<base64 key>'")
            try:
                key = _b64decode(encoded.strip())
            except (binascii.Error, ValueError):
                raise ValueError(f"CONFIG_SECRET_KEYS key '{kid}': not base64") from None
            if len(key) != 32:
                raise ValueError(f"CONFIG_SECRET_KEYS key '{kid}': must be 32 bytes (AES-256), got {len(key)}")
            if kid in keys:
                raise ValueError(f"CONFIG_SECRET_KEYS key id '{kid}' is listed twice")
            keys[kid] = key
            order.append(kid)
        if not order:
            raise ValueError("CONFIG_SECRET_KEYS is empty")
        return cls(keys, order[0])

    def seal(self, plaintext: str, context: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._keys[self.current].encrypt(nonce, plaintext.encode(), context.encode())
        return f"{PREFIX}{self.current}:{base64.urlsafe_b64encode(nonce + sealed).decode().rstrip('=')}"

    def open(self, stored: str, context: str) -> str:
        """The plaintext of a sealed value (a legacy plaintext value is returned as is)."""
        if not is_sealed(stored):
            return stored
        kid, _, encoded = stored.removeprefix(PREFIX).partition(":")
        aead = self._keys.get(kid)
        if aead is None:
            raise SecretUnavailableError(f"secret sealed with unknown key id '{kid}'")
        try:
            raw = _b64decode(encoded)
            return aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context.encode()).decode()
        except (InvalidTag, ValueError, binascii.Error):
            raise SecretUnavailableError(f"secret sealed with key id '{kid}' does not open") from None

    def needs_reseal(self, stored: str) -> bool:
        """Plaintext, or sealed with a key other than the current one."""
        return not stored.startswith(f"{PREFIX}{self.current}:")


def is_sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)


def webhook_secret_context(tenant_id: str, webhook_id: str) -> str:
    return f"webhook:{tenant_id}:{webhook_id}"
