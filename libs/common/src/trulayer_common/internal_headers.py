"""The gateway → control-engine contract for forwarded requests.

The gateway authenticates every public request, then forwards control-plane routes to the
control-engine with the principal in these headers and the shared ``INTERNAL_TOKEN``. The
control-engine trusts the principal headers only on a request carrying the token; the gateway
never copies a client's own ``X-Trulayer-*`` headers.
"""

from __future__ import annotations

INTERNAL_TOKEN_HEADER = "X-Trulayer-Internal-Token"  # noqa: S105 - a header name, not a secret
TENANT_ID = "X-Trulayer-Tenant-Id"
ROLE = "X-Trulayer-Role"
ACTOR = "X-Trulayer-Actor"
AUTH_KIND = "X-Trulayer-Auth-Kind"
API_KEY_ID = "X-Trulayer-Api-Key-Id"

PRINCIPAL_HEADERS = (TENANT_ID, ROLE, ACTOR, AUTH_KIND, API_KEY_ID)
