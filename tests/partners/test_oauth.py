"""The OAuth 2 server end to end over HTTP (through the ASGI app): tokens fetched with
authlib's own client, verified against the published JWKS with an independent JOSE
library (PyJWT), and every refusal answered as RFC 6749 section 5.2 says."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt as pyjwt
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey

from exchange.app import create_app
from exchange.kit.clock import utc_now
from exchange.kit.db import Database
from exchange.kit.settings import Settings
from exchange.kit.system import SYSTEM
from partners import clients, identity, registry
from partners import tokens as token_service
from partners.identity import IdentityKeys
from partners.models import PartnerStatus
from partners.oauth import MEMBER_REF_TOKEN_TYPE, TOKEN_EXCHANGE
from tests.conftest import NOW, TEST_SECRET_KEY
from tests.partners.test_registry import TERMS, unique_name

BASE = "http://127.0.0.1:8000"
TOKEN_URL = f"{BASE}/oauth/token"
SECRET = TEST_SECRET_KEY


@pytest.fixture(scope="module")
async def http(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    home: Path = tmp_path_factory.mktemp("home")
    settings = Settings(
        home=home, database_url=database_url, secret_key_from_env=SECRET, public_url=BASE
    )
    app = create_app(settings, sweep=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            client.app = app  # type: ignore[attr-defined]
            client.transport_for_tests = transport  # type: ignore[attr-defined]
            yield client


async def _partner_client(db: Database, scopes: str, **kw: Any) -> tuple[int, str, str | None, str]:
    name = unique_name()
    async with db.transaction(SYSTEM) as conn:
        partner = await registry.add_partner(conn, name=name, terms=TERMS, now=utc_now())
        created = await clients.create_client(
            conn, scopes=scopes.split(), partner_id=partner.id, **kw
        )
    return partner.id, created.client_id, created.client_secret, name


def _oauth_client(http: Any, client_id: str, secret: str | None, **kw: Any) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client_id=client_id,
        client_secret=secret,
        transport=http.transport_for_tests,
        base_url=BASE,
        **kw,
    )


async def _jwks(http: Any) -> pyjwt.PyJWKSet:
    return pyjwt.PyJWKSet.from_dict((await http.get("/.well-known/jwks.json")).json())


async def _independently_verified(http: Any, access_token: str) -> dict[str, Any]:
    header = pyjwt.get_unverified_header(access_token)
    key = (await _jwks(http))[header["kid"]]
    claims: dict[str, Any] = pyjwt.decode(
        access_token, key=key.key, algorithms=["ES256"], audience=f"{BASE}/graphql", issuer=BASE
    )
    assert header["typ"] == "at+jwt"
    return claims


async def test_client_secret_basic_gets_a_short_lived_es256_at_jwt(db: Database, http: Any) -> None:
    partner_id, client_id, secret, _ = await _partner_client(db, "points:earn points:redeem")

    async with _oauth_client(http, client_id, secret) as oauth:
        token = await oauth.fetch_token(TOKEN_URL, grant_type="client_credentials")

    claims = await _independently_verified(http, token["access_token"])
    assert (claims["sub"], claims["client_id"], claims["partner_id"]) == (
        client_id,
        client_id,
        partner_id,
    )
    assert claims["scope"] == "points:earn points:redeem"
    assert 0 < claims["exp"] - claims["iat"] <= 15 * 60
    assert claims["jti"]
    assert token["token_type"] == "Bearer"


async def test_client_secret_post_and_a_narrowed_scope(db: Database, http: Any) -> None:
    _, client_id, secret, _ = await _partner_client(db, "points:earn points:redeem")

    async with _oauth_client(
        http, client_id, secret, token_endpoint_auth_method="client_secret_post"
    ) as oauth:
        token = await oauth.fetch_token(
            TOKEN_URL, grant_type="client_credentials", scope="points:earn"
        )

    claims = await _independently_verified(http, token["access_token"])
    assert claims["scope"] == "points:earn"


async def test_private_key_jwt_authenticates_and_an_assertion_is_accepted_once(
    db: Database, http: Any
) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = ECKey.import_key(pem).as_dict(private=False) | {"kid": "client-key-1"}
    _, client_id, secret, _ = await _partner_client(
        db, "transactions:read", jwks={"keys": [public]}
    )
    assert secret is None

    async with _oauth_client(
        http, client_id, None, token_endpoint_auth_method=PrivateKeyJWT(TOKEN_URL, alg="ES256")
    ) as oauth:
        oauth.client_secret = ECKey.import_key(pem, {"kid": "client-key-1"})
        token = await oauth.fetch_token(TOKEN_URL, grant_type="client_credentials")
    assert (await _independently_verified(http, token["access_token"]))["sub"] == client_id

    assertion = pyjwt.encode(
        {
            "iss": client_id,
            "sub": client_id,
            "aud": TOKEN_URL,
            "jti": secrets.token_hex(8),
            "exp": int(time.time()) + 60,
            "iat": int(time.time()),
        },
        private,
        algorithm="ES256",
        headers={"kid": "client-key-1"},
    )
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
    }
    first = await http.post("/oauth/token", data=form)
    replay = await http.post("/oauth/token", data=form)
    assert first.status_code == 200
    # RFC 6749 5.2: 401 is for Authorization-header authentication; this is a form post.
    assert (replay.status_code, replay.json()["error"]) == (400, "invalid_client")


@pytest.mark.parametrize("case", ["wrong secret", "unknown client"])
async def test_bad_client_credentials_are_invalid_client(
    db: Database, http: Any, case: str
) -> None:
    _, client_id, secret, _ = await _partner_client(db, "points:earn")
    if case == "unknown client":
        client_id = "pt_" + secrets.token_hex(10)
    auth = (client_id, "not-the-secret" if case == "wrong secret" else str(secret))

    response = await http.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=auth)

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["cache-control"] == "no-store"
    assert "access_token" not in response.text


@pytest.mark.parametrize("scope", ["points:earn points:reverse", "partners:admin", "bogus"])
async def test_a_scope_beyond_the_clients_is_invalid_scope(
    db: Database, http: Any, scope: str
) -> None:
    _, client_id, secret, _ = await _partner_client(db, "points:earn")

    response = await http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": scope},
        auth=(client_id, str(secret)),
    )

    assert (response.status_code, response.json()["error"]) == (400, "invalid_scope")


async def test_an_unknown_grant_type_is_refused(db: Database, http: Any) -> None:
    _, client_id, secret, _ = await _partner_client(db, "points:earn")

    response = await http.post(
        "/oauth/token",
        data={"grant_type": "password", "username": "a", "password": "b"},
        auth=(client_id, str(secret)),
    )

    assert (response.status_code, response.json()["error"]) == (400, "unsupported_grant_type")


async def _token(http: Any, client_id: str, secret: str | None, **form: str) -> str:
    response = await http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", **form},
        auth=(client_id, str(secret)),
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def _whoami(http: Any, token: str) -> httpx.Response:
    return await http.get("/api/whoami", headers={"Authorization": f"Bearer {token}"})


async def test_a_call_without_a_valid_token_is_401_with_a_bearer_challenge(http: Any) -> None:
    missing = await http.get("/api/whoami")
    garbage = await _whoami(http, "not.a.jwt")

    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert garbage.status_code == 401
    assert 'error="invalid_token"' in garbage.headers["www-authenticate"]


async def test_an_expired_token_is_refused(db: Database, http: Any) -> None:
    _, client_id, _, _ = await _partner_client(db, "points:earn")
    runtime = http.app.state.auth
    context = await runtime.context()
    expired, _ = token_service.issue(
        context.keys,
        context.settings,
        client_id=client_id,
        subject=client_id,
        scopes=["points:earn"],
        now=utc_now() - timedelta(hours=1),
        extra={"kind": "PARTNER"},
    )

    response = await _whoami(http, expired)

    assert response.status_code == 401
    assert "expired" in response.headers["www-authenticate"]


async def _until_refused(http: Any, token: str) -> httpx.Response:
    """Token invalidation reaches the verifier through NOTIFY, asynchronously."""
    for _ in range(40):
        response = await _whoami(http, token)
        if response.status_code == 401:
            return response
        await asyncio.sleep(0.05)
    return response


async def test_suspending_a_partner_stops_its_tokens_and_its_token_requests(
    db: Database, http: Any
) -> None:
    _, client_id, secret, name = await _partner_client(db, "points:earn")
    token = await _token(http, client_id, secret)
    assert (await _whoami(http, token)).status_code == 200

    async with db.transaction(SYSTEM) as conn:
        await registry.set_status(conn, name=name, status=PartnerStatus.SUSPENDED, now=utc_now())

    assert (await _until_refused(http, token)).status_code == 401
    refused = await http.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, str(secret))
    )
    assert (refused.status_code, refused.json()["error"]) == (401, "invalid_client")


async def test_a_revoked_token_is_refused_and_introspects_inactive(db: Database, http: Any) -> None:
    _, client_id, secret, _ = await _partner_client(db, "points:earn")
    token = await _token(http, client_id, secret)
    auth = (client_id, str(secret))
    before = (await http.post("/oauth/introspect", data={"token": token}, auth=auth)).json()

    revoked = await http.post("/oauth/revoke", data={"token": token}, auth=auth)

    assert revoked.status_code == 200
    assert (before["active"], before["client_id"]) == (True, client_id)
    after = await http.post("/oauth/introspect", data={"token": token}, auth=auth)
    assert after.json() == {"active": False}
    assert (await _until_refused(http, token)).status_code == 401


async def test_another_client_can_neither_introspect_nor_revoke_a_token(
    db: Database, http: Any
) -> None:
    _, owner_id, owner_secret, _ = await _partner_client(db, "points:earn")
    _, other_id, other_secret, _ = await _partner_client(db, "points:earn")
    token = await _token(http, owner_id, owner_secret)

    peek = await http.post(
        "/oauth/introspect", data={"token": token}, auth=(other_id, str(other_secret))
    )
    await http.post("/oauth/revoke", data={"token": token}, auth=(other_id, str(other_secret)))

    assert peek.json() == {"active": False}
    assert (await _whoami(http, token)).status_code == 200


async def test_token_exchange_gives_a_partner_a_member_token_for_its_own_member(
    db: Database, http: Any
) -> None:
    partner_id, client_id, secret, _ = await _partner_client(db, "members:read points:earn")
    async with db.transaction(SYSTEM) as conn:
        linked = await identity.link_member(
            conn,
            keys=IdentityKeys.from_secret(SECRET.encode()),
            partner_id=partner_id,
            member_ref="cust-42",
            email=f"m{secrets.token_hex(4)}@example.com",
            now=NOW,
        )
    form = {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": "cust-42",
        "subject_token_type": MEMBER_REF_TOKEN_TYPE,
    }

    response = await http.post("/oauth/token", data=form, auth=(client_id, str(secret)))
    too_much = await http.post(
        "/oauth/token", data=form | {"scope": "wallet:transfer"}, auth=(client_id, str(secret))
    )
    stranger = await http.post(
        "/oauth/token", data=form | {"subject_token": "nobody"}, auth=(client_id, str(secret))
    )

    assert response.status_code == 200, response.text
    claims = await _independently_verified(http, response.json()["access_token"])
    assert claims["sub"] == f"member:{linked.member_id}"
    assert (claims["scope"], claims["act"]) == ("wallet:read", {"sub": client_id})
    assert response.json()["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    me = (await _whoami(http, response.json()["access_token"])).json()
    assert (me["kind"], me["memberId"]) == ("MEMBER", linked.member_id)
    assert (too_much.status_code, too_much.json()["error"]) == (400, "invalid_scope")
    assert (stranger.status_code, stranger.json()["error"]) == (400, "invalid_grant")


async def test_a_client_without_members_read_can_not_exchange_tokens(
    db: Database, http: Any
) -> None:
    _, client_id, secret, _ = await _partner_client(db, "points:earn")

    response = await http.post(
        "/oauth/token",
        data={
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": "x",
            "subject_token_type": MEMBER_REF_TOKEN_TYPE,
        },
        auth=(client_id, str(secret)),
    )

    assert (response.status_code, response.json()["error"]) == (400, "unauthorized_client")


async def test_metadata_and_jwks_are_published(http: Any) -> None:
    meta = (await http.get("/.well-known/oauth-authorization-server")).json()
    jwks = (await http.get("/.well-known/jwks.json")).json()

    assert meta["issuer"] == BASE
    assert meta["token_endpoint"] == TOKEN_URL
    assert "private_key_jwt" in meta["token_endpoint_auth_methods_supported"]
    assert len(jwks["keys"]) >= 2  # the active key and the next one
    assert all("d" not in key for key in jwks["keys"])


async def test_key_rotation_keeps_old_tokens_valid_and_the_new_key_was_published_first(
    db: Database, http: Any
) -> None:
    from partners import keys as key_store

    _, client_id, secret, _ = await _partner_client(db, "points:earn")
    old_token = await _token(http, client_id, secret)
    published_before = {k["kid"] for k in (await http.get("/.well-known/jwks.json")).json()["keys"]}

    async with db.transaction(SYSTEM) as conn:
        new_kid = await key_store.rotate(conn, secret=SECRET.encode(), now=utc_now())
    http.app.state.auth.invalidate()
    new_token = await _token(http, client_id, secret)

    assert new_kid in published_before
    assert pyjwt.get_unverified_header(new_token)["kid"] == new_kid
    assert (await _whoami(http, old_token)).status_code == 200
    assert (await _whoami(http, new_token)).status_code == 200
