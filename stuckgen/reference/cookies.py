"""Build Supabase-style session cookies (``sb-<ref>-auth-token``, chunked, ``base64-``).

The reference deployment issues these and checks them; tests use them as the
"browser" cookie. The JWT is signed with HS256 so the deployment can tell its
own tokens from forged ones, like Supabase does with the project's JWT secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

# Not a secret: the reference deployment's JWT key exists only on loopback.
REFERENCE_JWT_KEY = "stuckgen-reference-jwt-key"
DEFAULT_CHUNK_SIZE = 3180


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sign_jwt(claims: dict[str, object], *, key: str = REFERENCE_JWT_KEY) -> str:
    """An HS256 JWT holding ``claims``."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(key.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64url(signature)}"


def verify_jwt_signature(token: str, *, key: str = REFERENCE_JWT_KEY) -> bool:
    """True when ``token``'s HS256 signature was made with ``key``."""
    parts = token.split(".")
    if len(parts) != 3:
        return False
    expected = _b64url(hmac.new(key.encode(), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest())
    return hmac.compare_digest(expected, parts[2])


def make_session_cookie(
    user_id: str,
    *,
    expires_in: float,
    project_ref: str,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    metadata_padding: int = 0,
    key: str = REFERENCE_JWT_KEY,
    now: float | None = None,
    cookie_name: str | None = None,
) -> dict[str, str]:
    """Cookies a browser would hold after signing in: name -> value.

    ``expires_in`` may be negative (an already expired session).
    ``metadata_padding`` adds that many characters of user metadata, the usual
    reason real session cookies grow past one chunk.
    """
    issued = int(time.time() if now is None else now)
    exp = int(issued + expires_in)
    metadata: dict[str, object] = {"full_name": "Reference User"}
    if metadata_padding:
        metadata["avatar"] = "x" * metadata_padding
    access_token = sign_jwt(
        {
            "aud": "authenticated",
            "iss": f"https://{project_ref}.supabase.co/auth/v1",
            "exp": exp,
            "iat": issued,
            "sub": user_id,
            "role": "authenticated",
            "session_id": str(uuid.uuid4()),
            "user_metadata": metadata,
        },
        key=key,
    )
    session = {
        "access_token": access_token,
        "token_type": "bearer",
        "expires_in": int(expires_in),
        "expires_at": exp,
        "refresh_token": uuid.uuid4().hex[:12],
        "user": {"id": user_id, "aud": "authenticated", "user_metadata": metadata},
    }
    value = "base64-" + _b64url(json.dumps(session, separators=(",", ":")).encode())
    name = cookie_name or f"sb-{project_ref}-auth-token"
    if len(value) <= chunk_size:
        return {name: value}
    return {f"{name}.{i}": value[start : start + chunk_size] for i, start in enumerate(range(0, len(value), chunk_size))}


def cookie_header(cookies: dict[str, str]) -> str:
    """The ``Cookie`` header a browser would send for ``cookies``."""
    return "; ".join(f"{name}={value}" for name, value in cookies.items())
