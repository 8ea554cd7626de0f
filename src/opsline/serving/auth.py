"""API-key protection for endpoints that change state (``/jobs``, ``/admin``).

The key comes from ``OPSLINE_API_KEY`` and is sent as ``X-API-Key: KEY`` or
``Authorization: Bearer KEY``. Without a configured key these endpoints are refused (503),
never open: starting training is not something an unconfigured server should allow.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from opsline.serving.settings import ServingSettings

DISABLED = "job and admin endpoints are disabled: set OPSLINE_API_KEY"

# auto_error=False: we answer ourselves, with one message and WWW-Authenticate.
_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="The server's OPSLINE_API_KEY"
)
_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <OPSLINE_API_KEY>`")


async def require_api_key(
    request: Request,
    api_key: Annotated[str | None, Depends(_api_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Pass if the request carries the configured key; 503 if none is configured, else 401."""
    settings: ServingSettings = request.app.state.settings
    expected = settings.api_key.get_secret_value() if settings.api_key else ""
    if not expected:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=DISABLED)
    given = api_key or (bearer.credentials if bearer else None)
    if given is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="Missing API key: send X-API-Key or Authorization: Bearer.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not secrets.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="Invalid API key.",
            headers={"WWW-Authenticate": "Bearer"},
        )


ApiKeyDep = Depends(require_api_key)
