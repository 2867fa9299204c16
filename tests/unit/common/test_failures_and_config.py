from __future__ import annotations

from datetime import UTC, datetime

import pytest

from trulayer_common.clickhouse.migrations import load_migrations
from trulayer_common.config import ApiKey, ConfigRecord, ConfigState, Project, Tenant, hash_api_key
from trulayer_common.failures import classify_failure

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (None, ""),
        ("", ""),
        ("Request timed out after 30s", "timeout"),
        ("openai.APITimeoutError: timeout", "timeout"),
        ("Error code: 429 - Rate limit reached", "rate_limit"),
        ("maximum context length is 8192 tokens", "context_length"),
        ("Could not parse JSON in model output", "invalid_response"),
        ("boom", "other"),
    ],
)
def test_classify_failure(error, kind):
    assert classify_failure(error) == kind


def test_config_state_follows_the_log():
    state = ConfigState()
    tenant = Tenant(id="t1", name="acme", created_at=NOW)
    project = Project(id="p1", tenant_id="t1", name="default", created_at=NOW)
    key = ApiKey(
        id="k1",
        tenant_id="t1",
        project_id="p1",
        name="owner",
        prefix="tl_abc",
        key_hash=hash_api_key("tl_secret"),
        created_at=NOW,
    )
    for entity in (tenant, project, key):
        state.apply(ConfigRecord(entity=entity, at=NOW))
    assert state.key_by_hash(hash_api_key("tl_secret")) == key
    assert state.project_of_tenant("t1", "default") == project
    assert state.project_of_tenant("t1", "p1") == project
    assert state.project_of_tenant("t2", "p1") is None
    renamed = project.model_copy(update={"name": "prod"})
    state.apply(ConfigRecord(entity=renamed, at=NOW))
    assert state.project_of_tenant("t1", "default") is None
    assert state.project_of_tenant("t1", "prod") == renamed
    revoked = key.model_copy(update={"revoked_at": NOW})
    state.apply(ConfigRecord.model_validate_json(ConfigRecord(entity=revoked, at=NOW).model_dump_json()))
    assert state.key_by_hash(hash_api_key("tl_secret")).revoked_at == NOW  # type: ignore[union-attr]
    state.delete("api_key:k1")
    assert state.key_by_hash(hash_api_key("tl_secret")) is None


def test_migrations_are_numbered_and_ordered():
    migrations = load_migrations()
    versions = [v for v, _, _ in migrations]
    assert versions == sorted(versions) and versions[0] == 1
    statements = [s for _, _, stmts in migrations for s in stmts]
    assert all("IF NOT EXISTS" in s for s in statements if s.upper().startswith("CREATE"))
