"""Policies for the SDK: the bundle, live signals, the one decision function and the client.

``PolicyClient`` decides locally and fails closed (see :mod:`trulayer_sdk.policy.client`);
:func:`decide` is the decision semantics the gateway shares (:mod:`trulayer_sdk.policy.decisions`).
"""

from trulayer_sdk.errors import PolicyBlockedError
from trulayer_sdk.policy.bundle import BundleError, KillSwitch, ModelRoute, Policy, PolicyBundle, SafeDefault
from trulayer_sdk.policy.client import PolicyClient
from trulayer_sdk.policy.decisions import Decision, DecisionRequest, decide, rollout_bucket, safe_default_decision
from trulayer_sdk.policy.signals import NO_SIGNALS, Signals, WindowStats

__all__ = [
    "NO_SIGNALS",
    "BundleError",
    "Decision",
    "DecisionRequest",
    "KillSwitch",
    "ModelRoute",
    "Policy",
    "PolicyBlockedError",
    "PolicyBundle",
    "PolicyClient",
    "SafeDefault",
    "Signals",
    "WindowStats",
    "decide",
    "rollout_bucket",
    "safe_default_decision",
]
