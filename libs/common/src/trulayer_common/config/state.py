"""In-memory materialisation of the config log: tenants, projects and API keys by hash; the
control entities per tenant in :attr:`ConfigState.control`."""

from __future__ import annotations

from trulayer_common.config.control import ControlConfig
from trulayer_common.config.control_entities import CONTROL_KINDS, KillSwitch, ModelRoute, Policy, SafeDefault
from trulayer_common.config.entities import AlertRule, ApiKey, ConfigRecord, EvalRule, Project, Tenant, Webhook


class ConfigState:
    """Apply records in log order; lookups are dictionary reads (the gateway's hot path)."""

    def __init__(self) -> None:
        self.tenants: dict[str, Tenant] = {}
        self.projects: dict[str, Project] = {}
        self.api_keys: dict[str, ApiKey] = {}
        self._keys_by_hash: dict[str, ApiKey] = {}
        self._projects_by_name: dict[tuple[str, str], Project] = {}
        self.alert_rules: dict[str, AlertRule] = {}
        self.webhooks: dict[str, Webhook] = {}
        self.control = ControlConfig()
        self.eval_rules: dict[str, EvalRule] = {}
        # tenant id → its live eval rules: the eval-engine looks a trace's tenant up here first.
        self._eval_rules_by_tenant: dict[str, dict[str, EvalRule]] = {}
        self.records_applied = 0

    def apply(self, record: ConfigRecord) -> None:
        entity = record.entity
        if isinstance(entity, Tenant):
            self.tenants[entity.id] = entity
        elif isinstance(entity, Project):
            old = self.projects.get(entity.id)
            if old is not None:
                self._projects_by_name.pop((old.tenant_id, old.name), None)
            self.projects[entity.id] = entity
            self._projects_by_name[(entity.tenant_id, entity.name)] = entity
            self.control.touch(entity.tenant_id)  # bundles list the tenant's projects
        elif isinstance(entity, ApiKey):
            old_key = self.api_keys.get(entity.id)
            if old_key is not None and old_key.key_hash != entity.key_hash:
                # A rotation: the previous secret must stop working at once.
                self._keys_by_hash.pop(old_key.key_hash, None)
            self.api_keys[entity.id] = entity
            self._keys_by_hash[entity.key_hash] = entity
            self.control.touch(entity.tenant_id)  # open config streams re-check their key
        elif isinstance(entity, AlertRule | Webhook):
            self._apply_alerting(entity)
        elif isinstance(entity, EvalRule):
            self._apply_eval_rule(entity, deleted=entity.deleted_at is not None)
        elif isinstance(entity, Policy | ModelRoute | KillSwitch | SafeDefault):
            self.control.apply(entity, record.at)
        self.records_applied += 1

    def delete(self, key: str) -> None:
        """A tombstone (null value) for ``<kind>:<id>``."""
        kind, _, entity_id = key.partition(":")
        if kind == "tenant":
            self.tenants.pop(entity_id, None)
        elif kind == "project":
            old = self.projects.pop(entity_id, None)
            if old is not None:
                self._projects_by_name.pop((old.tenant_id, old.name), None)
        elif kind == "alert_rule":
            self.alert_rules.pop(entity_id, None)
        elif kind == "webhook":
            self.webhooks.pop(entity_id, None)
        elif kind == "eval_rule":
            rule = self.eval_rules.get(entity_id)
            if rule is not None:
                self._apply_eval_rule(rule, deleted=True)
        elif kind == "api_key":
            key_obj = self.api_keys.pop(entity_id, None)
            if key_obj is not None:
                self._keys_by_hash.pop(key_obj.key_hash, None)
        elif kind in CONTROL_KINDS:
            self.control.delete(kind, entity_id)

    def _apply_alerting(self, entity: AlertRule | Webhook) -> None:
        """Soft-deleted rules and webhooks leave the state (their record stays on the log)."""
        if isinstance(entity, AlertRule):
            self.alert_rules.pop(entity.id, None)
            if entity.deleted_at is None:
                self.alert_rules[entity.id] = entity
        else:
            self.webhooks.pop(entity.id, None)
            if entity.deleted_at is None:
                self.webhooks[entity.id] = entity

    def _apply_eval_rule(self, rule: EvalRule, *, deleted: bool) -> None:
        """Soft-deleted rules leave the state (their record stays on the log)."""
        self.eval_rules.pop(rule.id, None)
        by_tenant = self._eval_rules_by_tenant.get(rule.tenant_id)
        if by_tenant is not None:
            by_tenant.pop(rule.id, None)
            if not by_tenant:
                del self._eval_rules_by_tenant[rule.tenant_id]
        if not deleted:
            self.eval_rules[rule.id] = rule
            self._eval_rules_by_tenant.setdefault(rule.tenant_id, {})[rule.id] = rule

    def eval_rules_of(self, tenant_id: str) -> list[EvalRule]:
        """The tenant's eval rules, enabled or not (a dictionary read: the eval-engine's hot path)."""
        rules = self._eval_rules_by_tenant.get(tenant_id)
        return list(rules.values()) if rules else []

    def has_eval_rules(self, tenant_id: str) -> bool:
        return tenant_id in self._eval_rules_by_tenant

    def alert_rules_of(self, tenant_id: str) -> list[AlertRule]:
        return [r for r in self.alert_rules.values() if r.tenant_id == tenant_id]

    def webhooks_of(self, tenant_id: str) -> list[Webhook]:
        return [w for w in self.webhooks.values() if w.tenant_id == tenant_id]

    def key_by_hash(self, key_hash: str) -> ApiKey | None:
        return self._keys_by_hash.get(key_hash)

    def project_of_tenant(self, tenant_id: str, id_or_name: str) -> Project | None:
        """A project of this tenant named by id or by name."""
        project = self.projects.get(id_or_name)
        if project is not None and project.tenant_id == tenant_id:
            return project
        return self._projects_by_name.get((tenant_id, id_or_name))

    def projects_of(self, tenant_id: str) -> list[Project]:
        return [p for p in self.projects.values() if p.tenant_id == tenant_id]

    def api_keys_of(self, tenant_id: str) -> list[ApiKey]:
        return [k for k in self.api_keys.values() if k.tenant_id == tenant_id]
