"""TruLayer Python SDK.

Policies (fail closed): :class:`PolicyClient` decides locally from the tenant's cached policy
bundle (:mod:`trulayer_sdk.policy`).
"""

from trulayer_sdk.policy import PolicyClient

__all__ = ["PolicyClient"]
