"""The alerter restarted mid-window: the window survives (no missed alert) and so does the
cooldown (no duplicate), from faust's changelogs and the committed offsets."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.integration.alerting_support import Receiver, ago, receiver
from tests.integration.conftest import Harness, Tenant, trace
from tests.integration.test_alerter import SECRET, Api, fired, processed


@pytest.fixture
async def hook() -> AsyncIterator[Receiver]:
    async with receiver(SECRET) as r:
        yield r


async def test_restart_mid_window_neither_misses_nor_duplicates(
    harness: Harness, http: aiohttp.ClientSession, tenant: Tenant, hook: Receiver
) -> None:
    await harness.start_alerter()
    api = Api(harness, http, tenant)
    await api.clear_default_rules()
    await api.webhook(hook.url)
    probe = await api.rule(name="probe", metric="volume", operator="gte", threshold=1, cooldown_minutes=1)
    rule = await api.rule(metric="volume", operator="gte", threshold=10, window_secs=120, cooldown_minutes=60)

    await api.ingest([trace(started_at=ago(700)) for _ in range(6)])
    await processed(hook, probe, 1)
    await harness.stop_alerter()
    # Sent while the alerter is down: read from the committed offsets on restart. Only with the
    # 6 traces before the restart does the window reach 10.
    await api.ingest([trace(started_at=ago(639)) for _ in range(6)])
    await harness.start_alerter()
    await processed(hook, probe, 2)
    assert len(fired(hook, rule)) == 1
    assert fired(hook, rule)[0]["metric_value"] == 12

    await harness.stop_alerter()
    await harness.start_alerter()
    await api.ingest([trace(started_at=ago(578)) for _ in range(6)])
    await processed(hook, probe, 3)
    # Still inside the 60-minute cooldown restored from the changelog: no second alert.
    assert len(fired(hook, rule)) == 1
