"""The per-process cache of checked token signatures never outlives the key set it was
checked under, and never skips the claim checks."""

from __future__ import annotations

from datetime import timedelta

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from exchange.kit.clock import utc_now
from partners import tokens
from partners.tokens import InvalidToken, TokenSettings

SETTINGS = TokenSettings(issuer="https://issuer.test", audience="https://issuer.test/graphql")


def _key_set(kid: str) -> KeySet:
    return KeySet([ECKey.generate_key("P-256", parameters={"kid": kid}, private=True)])


def _token(keys: KeySet, *, lifetime: timedelta = timedelta(minutes=5)) -> str:
    now = utc_now()
    claims = {
        "iss": SETTINGS.issuer,
        "aud": SETTINGS.audience,
        "sub": "client-1",
        "jti": "j-" + str(now.timestamp()),
        "exp": int((now + lifetime).timestamp()),
    }
    return jwt.encode({"typ": "at+jwt", "alg": "ES256"}, claims, keys, algorithms=["ES256"])


def test_a_checked_signature_is_not_trusted_under_another_key_set() -> None:
    signer = _key_set("a")
    token = _token(signer)
    now = utc_now()
    tokens.decode(token, SETTINGS, signer, now=now, keys_fingerprint="set-a")

    with pytest.raises(InvalidToken):
        tokens.decode(token, SETTINGS, _key_set("b"), now=now, keys_fingerprint="set-b")


def test_a_cached_signature_still_has_its_expiry_checked() -> None:
    signer = _key_set("a")
    token = _token(signer, lifetime=timedelta(minutes=1))
    tokens.decode(token, SETTINGS, signer, now=utc_now(), keys_fingerprint="set-a")

    with pytest.raises(InvalidToken, match="not valid"):
        tokens.decode(
            token, SETTINGS, signer, now=utc_now() + timedelta(hours=1), keys_fingerprint="set-a"
        )
