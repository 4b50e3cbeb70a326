"""Keys derived from EXCHANGE_SECRET_KEY, one per purpose (HKDF-SHA256), and the two
primitives identity needs: an HMAC blind index and AES-256-GCM encryption."""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

NONCE_BYTES = 12


def derive_key(secret: bytes, purpose: str) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"coalition-exchange", info=purpose.encode()
    ).derive(secret)


def blind_index(key: bytes, kind: str, normalized: str) -> bytes:
    """A keyed digest for matching equal values without storing them."""
    return hmac.new(key, f"{kind}:{normalized}".encode(), hashlib.sha256).digest()


def encrypt(key: bytes, plaintext: str, *, associated: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext.encode(), associated)


def decrypt(key: bytes, ciphertext: bytes, *, associated: bytes) -> str:
    nonce, sealed = ciphertext[:NONCE_BYTES], ciphertext[NONCE_BYTES:]
    return AESGCM(key).decrypt(nonce, sealed, associated).decode()
