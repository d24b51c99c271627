"""The OpenID provider fixture (tests/fixtures/oidc/provider.mjs) as seen from a test: start it,
get tokens for alice/bob/carol, rotate keys, read its counters. Also forges tokens signed with a
key of the test's own, for the negative cases a real provider would never issue."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from harness import REPO, ProcessRegistry, wait_until

OIDC_DIR = REPO / "tests" / "fixtures" / "oidc"
USERS = {"alice": "alice-password", "bob": "bob-password", "carol": "carol-password"}


def install() -> None:
    subprocess.run(["bash", str(OIDC_DIR / "install.sh")], check=True, capture_output=True)


class Idp:
    """A running provider."""

    def __init__(self, registry: ProcessRegistry, args: list[str] | None = None) -> None:
        install()
        node = os.environ.get("MCPGATE_OIDC_NODE", "node")
        self.proc = registry.start("idp", [node, str(OIDC_DIR / "provider.mjs"), "--port", "0", *(args or [])])
        line = wait_until(lambda: self.proc.stdout().strip().splitlines()[:1], 20, what="IdP ready line")[0]
        info = json.loads(line)
        assert info["ready"], info
        self.issuer: str = info["issuer"]
        self.http = httpx.Client(timeout=10)

    def token(self, user: str, audience: str | None = None, scope: str | None = None, ttl: int | None = None) -> str:
        form = {"grant_type": "password", "username": user, "password": USERS.get(user, f"{user}-password")}
        if audience:
            form["audience"] = audience
        if scope:
            form["scope"] = scope
        if ttl:
            form["ttl"] = str(ttl)
        r = self.http.post(f"{self.issuer}/token", data=form, auth=("mcp-client", "mcp-client-secret"))
        assert r.status_code == 200, r.text
        return r.json()["access_token"]

    def rotate(self, drop_old: bool = False, same_kid: bool = False) -> None:
        """A new signing key; `same_kid`: it replaces the current one under the same `kid`."""
        query = "&".join(q for q, on in (("drop_old=1", drop_old), ("same_kid=1", same_kid)) if on)
        r = self.http.post(f"{self.issuer}/test/rotate-keys" + (f"?{query}" if query else ""))
        assert r.status_code == 200, r.text

    def stats(self) -> dict[str, Any]:
        return self.http.get(f"{self.issuer}/test/stats").json()

    def reset_stats(self) -> None:
        self.http.post(f"{self.issuer}/test/reset-stats")

    def mode(self, **mode: Any) -> None:
        r = self.http.post(f"{self.issuer}/test/mode", json=mode)
        assert r.status_code == 200, r.text

    def jwks(self) -> dict[str, Any]:
        return self.http.get(f"{self.issuer}/jwks").json()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def header_of(token: str) -> dict[str, Any]:
    return jwt.get_unverified_header(token)


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return ".".join([b64url(json.dumps(header).encode()), b64url(json.dumps(claims).encode()), b64url(signature)])


def hs256_with_public_key(idp_token: str, public_pem: bytes) -> str:
    """The classic confusion attack: HMAC-SHA256 keyed with the RSA public key's PEM bytes."""
    header = {**header_of(idp_token), "alg": "HS256"}
    claims = claims_of(idp_token)
    signing_input = ".".join([b64url(json.dumps(header).encode()), b64url(json.dumps(claims).encode())])
    sig = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(sig)


def public_pem_of_jwk(jwk: dict[str, Any]) -> bytes:
    key = jwt.PyJWK(jwk).key
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


class OwnIssuer:
    """A second trusted issuer whose key the test holds (configured with static keys)."""

    ISSUER = "https://test-issuer.mcpgate.local"

    def __init__(self, workdir: Path) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.pub_path = workdir / "test-issuer.pub.pem"
        self.pub_path.write_bytes(
            self.key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def config(self) -> dict[str, Any]:
        return {"issuer": self.ISSUER, "static_keys": [{"pem_file": str(self.pub_path), "kid": "test-1"}]}

    def token(self, **overrides: Any) -> str:
        now = int(time.time())
        claims = {
            "iss": self.ISSUER,
            "sub": "user-alice",
            "aud": "mcpgate",
            "iat": now,
            "exp": now + 300,
            "preferred_username": "alice",
            "resource_access": {"a.local": {"roles": ["echo"]}},
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "test-1"})

    def foreign_token(self, **overrides: Any) -> str:
        """Same claims, signed by a key nobody trusts."""
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = int(time.time())
        claims = {"iss": self.ISSUER, "sub": "user-alice", "aud": "mcpgate", "iat": now, "exp": now + 300, **overrides}
        return jwt.encode(claims, other, algorithm="RS256", headers={"kid": "test-1"})


def es256_key_pair(workdir: Path, name: str) -> tuple[Path, Path]:
    """A P-256 key pair as PKCS#8 / SPKI PEM files (for wristband signing)."""
    key = ec.generate_private_key(ec.SECP256R1())
    priv = workdir / f"{name}.key.pem"
    pub = workdir / f"{name}.pub.pem"
    priv.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    pub.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return priv, pub
