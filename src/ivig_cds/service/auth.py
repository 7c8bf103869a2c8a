"""The CDS Client's bearer JWT, checked as CDS Hooks 2.0 requires.

An asymmetric signature by an allowed issuer's key, `aud` equal to the endpoint called, and
present `exp`, `iat` and a `jti` not seen before. HMAC and `none` are refused: a shared secret
would let the service itself mint tokens.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from starlette.concurrency import run_in_threadpool

from ivig_cds.service.errors import ApiError
from ivig_cds.service.jti import JtiMemory, LocalJtiMemory

__all__ = ["ASYMMETRIC_ALGORITHMS", "IssuerKeys", "JwtVerifier", "check_issuer_keys"]

ASYMMETRIC_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
)
_JWT_LEEWAY_SECONDS = 30
_JWT_MAX_LIFETIME_SECONDS = 300  # the specification: exp no more than 5 minutes ahead
_JWKS_CACHE_SECONDS = 600

IssuerKeys = str | Mapping[str, Any] | Sequence[str | Mapping[str, Any]]
"""PEM public keys, JWKs, or a JWK Set (`{"keys": [...]}`) trusted for one issuer."""


class JwtVerifier:
    """Checks the CDS Client's bearer JWT: asymmetric signature by an allowed issuer's key,
    `aud` equal to the endpoint called, and present `exp`, `iat` and a `jti` not seen before.

    Keys come from the operator (PEM or JWK Set per issuer) or, when the token's `jku` header
    names a URL on the issuer's allow-list, from that JWK Set (fetched, cached for ten minutes).
    A `jku` off the list is never fetched.
    """

    def __init__(
        self,
        issuers: Mapping[str, IssuerKeys],
        *,
        jku_allowed: Mapping[str, Sequence[str]] | None = None,
        memory: JtiMemory | None = None,
    ) -> None:
        self._keys: dict[str, list[tuple[str | None, Any]]] = {}
        for issuer, material in issuers.items():
            self._keys[issuer] = [_load_key(item) for item in _key_items(material)]
        self._jku = {issuer: tuple(urls) for issuer, urls in (jku_allowed or {}).items()}
        for issuer in set(self._keys) | set(self._jku):
            if not self._keys.get(issuer) and not self._jku.get(issuer):
                raise ValueError(f"JWT issuer {issuer!r} has no keys and no allowed jku URL")
        self._memory: JtiMemory = memory or LocalJtiMemory()
        self._fetched: dict[str, tuple[float, list[tuple[str | None, Any]]]] = {}

    @property
    def issuers(self) -> list[str]:
        return sorted(set(self._keys) | set(self._jku))

    async def verify(self, authorization: str | None, audience: str) -> None:
        """Raise a 401 ApiError unless `authorization` carries a valid token for `audience`."""
        if not authorization or not authorization.startswith("Bearer "):
            raise _unauthorized("a bearer JWT from an allowed CDS Client is required")
        token = authorization.removeprefix("Bearer ").strip()
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise _unauthorized("the bearer token is not a well-formed JWT") from None
        algorithm = header.get("alg")
        if algorithm not in ASYMMETRIC_ALGORITHMS:
            raise _unauthorized(
                "the JWT must be signed with an asymmetric algorithm (e.g. ES384); "
                f"'{str(algorithm)[:20]}' is refused"
            )
        issuer = unverified.get("iss")
        if not isinstance(issuer, str) or issuer not in self.issuers:
            raise _unauthorized("the JWT issuer (iss) is not allowed by this service")
        kid = header.get("kid")
        candidates = list(self._keys.get(issuer, []))
        jku = header.get("jku")
        if isinstance(jku, str) and jku in self._jku.get(issuer, ()):
            candidates += await self._jwks(jku)
        elif jku is not None and not candidates:
            raise _unauthorized(
                "the JWT's jku is not on this service's allow-list for the issuer; "
                "keys are never fetched from it"
            )
        keys = [k for key_id, k in candidates if kid is None or key_id in (None, kid)]
        if not keys:
            raise _unauthorized("no key of the issuer matches the JWT's kid")
        claims = self._decode(token, keys, algorithm, issuer, audience)
        now = time.time()
        if claims["exp"] > now + _JWT_MAX_LIFETIME_SECONDS + _JWT_LEEWAY_SECONDS:
            raise _unauthorized("the JWT expires more than 5 minutes ahead")
        expires_at = float(claims["exp"]) + _JWT_LEEWAY_SECONDS
        fresh = await run_in_threadpool(
            self._memory.remember, issuer, str(claims["jti"]), expires_at
        )
        if not fresh:
            raise _unauthorized("the JWT was already used (jti replay)")

    async def _jwks(self, url: str) -> list[tuple[str | None, Any]]:
        cached = self._fetched.get(url)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        try:
            async with httpx.AsyncClient(timeout=5.0, follow_redirects=False) as client:
                response = await client.get(url, headers={"Accept": "application/json"})
                response.raise_for_status()
                document = response.json()
            keys = [_load_key(item) for item in _key_items(document)]
        except (httpx.HTTPError, ValueError, TypeError, jwt.PyJWTError):
            raise _unauthorized("the issuer's allow-listed jku could not be read") from None
        self._fetched[url] = (time.monotonic() + _JWKS_CACHE_SECONDS, keys)
        return keys

    @staticmethod
    def _decode(
        token: str, keys: Sequence[Any], algorithm: str, issuer: str, audience: str
    ) -> dict[str, Any]:
        failure = "the JWT signature does not verify with the issuer's keys"
        for key in keys:
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    key,
                    algorithms=[algorithm],
                    audience=audience,
                    issuer=issuer,
                    leeway=_JWT_LEEWAY_SECONDS,
                    options={"require": ["iss", "aud", "exp", "iat", "jti"]},
                )
                return claims
            except jwt.InvalidSignatureError:
                continue
            except jwt.ExpiredSignatureError:
                failure = "the JWT has expired"
            except jwt.InvalidAudienceError:
                failure = f"the JWT audience (aud) is not this service endpoint ({audience})"
            except jwt.MissingRequiredClaimError as exc:
                failure = f"the JWT lacks the required claim '{exc.claim}'"
            except jwt.PyJWTError:
                failure = "the JWT is invalid"
            break
        raise _unauthorized(failure)


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, message, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


def check_issuer_keys(
    issuers: Mapping[str, IssuerKeys], jku_allowed: Mapping[str, Sequence[str]] | None = None
) -> None:
    """Load every issuer's keys once, so that a bad key stops `serve` before it listens (in a
    worker process it would fail each start, and uvicorn would start it again and again).

    Raises:
        ValueError: naming the first issuer whose key is not an asymmetric public key, or who
            has neither a key nor a jku URL.
    """
    for issuer, material in issuers.items():
        try:
            keys = [_load_key(item) for item in _key_items(material)]
        except (ValueError, TypeError, jwt.PyJWTError, UnsupportedAlgorithm) as exc:
            raise ValueError(
                f"the key for issuer {issuer} is not an asymmetric public key (PEM, or a JWK "
                f"Set in .json): {type(exc).__name__}"
            ) from None
        if not keys and not (jku_allowed or {}).get(issuer):
            raise ValueError(f"the JWK Set for issuer {issuer} holds no key")


def _key_items(material: IssuerKeys) -> list[str | Mapping[str, Any]]:
    if isinstance(material, str):
        return [material]
    if isinstance(material, Mapping):
        keys = material.get("keys")
        return list(keys) if isinstance(keys, list) else [material]
    return list(material)


def _load_key(item: str | Mapping[str, Any]) -> tuple[str | None, Any]:
    if isinstance(item, str):
        return None, load_pem_public_key(item.encode())
    jwk = jwt.PyJWK.from_dict(dict(item))
    if jwk.algorithm_name not in ASYMMETRIC_ALGORITHMS and "alg" in item:
        raise ValueError("only asymmetric JWT keys are accepted")
    kid = item.get("kid")
    return (kid if isinstance(kid, str) else None), jwk.key
