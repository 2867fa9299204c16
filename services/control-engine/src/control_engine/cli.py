"""``trulayer``: the operator CLI. ``trulayer tenants create --name N --plan P`` prints an owner key;
``trulayer sessions token --tenant T --role R`` prints a local (HS256) dashboard session token;
``trulayer secrets generate-key`` prints a new ``CONFIG_SECRET_KEYS`` entry and ``trulayer
secrets reseal`` rewrites every webhook whose secret is plaintext (written before secrets were
sealed) or sealed with a key other than the first of ``CONFIG_SECRET_KEYS`` (rotation).

Reads ``KAFKA_BOOTSTRAP_SERVERS`` like every service; writes through the control-engine's
config log writer, so the CLI and the API produce identical records.
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from typing import get_args

import orjson

from control_engine.config_log import ConfigLogWriter
from control_engine.session_tokens import mint_session_token
from control_engine.settings import ControlEngineSettings
from control_engine.tenants import CreatedTenant, create_tenant
from trulayer_common import runtime
from trulayer_common.clickhouse import apply_migrations, create_clickhouse
from trulayer_common.config import ConfigLogReader, Plan
from trulayer_common.kafka import create_producer, ensure_topics
from trulayer_common.secret_box import SecretUnavailableError, generate_key_spec, webhook_secret_context
from trulayer_common.settings import load_settings


async def create_tenant_via_kafka(settings: ControlEngineSettings, name: str, plan: Plan) -> CreatedTenant:
    producer = create_producer(settings, client_id="trulayer-cli")
    await producer.start()
    try:
        return await create_tenant(ConfigLogWriter(producer), name, plan)
    finally:
        await producer.stop()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trulayer", description="TruLayer operator CLI")
    sub = parser.add_subparsers(dest="command", required=True)
    tenants = sub.add_parser("tenants", help="manage tenants").add_subparsers(dest="action", required=True)
    create = tenants.add_parser("create", help="create a tenant with a default project and an owner API key")
    create.add_argument("--name", required=True)
    create.add_argument("--plan", choices=list(get_args(Plan)), default="starter")
    create.add_argument("--json", action="store_true", help="print a JSON object instead of text")
    sub.add_parser("setup", help="create the Kafka topics and apply the ClickHouse migrations (idempotent)")
    sessions = sub.add_parser("sessions", help="local dashboard sessions").add_subparsers(dest="action", required=True)
    token = sessions.add_parser("token", help="print an HS256 session token (needs SESSION_HS256_SECRET)")
    token.add_argument("--tenant", required=True, help="tenant id")
    token.add_argument("--role", choices=["owner", "member", "viewer"], default="owner")
    token.add_argument("--subject", default="local-admin", help="the user the token names (audit 'actor')")
    token.add_argument("--ttl-minutes", type=int, default=60)
    secrets = sub.add_parser("secrets", help="secrets sealed on the config log").add_subparsers(
        dest="action", required=True
    )
    key = secrets.add_parser("generate-key", help="print a new CONFIG_SECRET_KEYS entry (kid:base64 key)")
    key.add_argument("--kid", default="k1", help="the key id (letters, digits, - and _)")
    secrets.add_parser("reseal", help="re-seal webhook secrets with the first key of CONFIG_SECRET_KEYS")
    return parser


async def reseal(settings: ControlEngineSettings) -> tuple[int, int]:
    """Rewrite every live webhook whose secret is not sealed with the current key; returns
    (re-sealed, skipped: sealed with a key that is not in ``CONFIG_SECRET_KEYS``)."""
    box = settings.secret_box()
    reader = ConfigLogReader(settings)
    await reader.start()
    producer = create_producer(settings, client_id="trulayer-cli")
    await producer.start()
    try:
        writer = ConfigLogWriter(producer)
        count = skipped = 0
        for hook in list(reader.state.webhooks.values()):
            if not box.needs_reseal(hook.secret):
                continue
            context = webhook_secret_context(hook.tenant_id, hook.id)
            try:
                plaintext = box.open(hook.secret, context)
            except SecretUnavailableError as exc:
                print(f"skipped webhook {hook.id}: {exc}", file=sys.stderr)
                skipped += 1
                continue
            await writer.append(hook.model_copy(update={"secret": box.seal(plaintext, context)}), "cli:secrets-reseal")
            count += 1
        return count, skipped
    finally:
        await producer.stop()
        await reader.stop()


async def setup(settings: ControlEngineSettings) -> None:
    """One-shot set-up of a distributed install: topics with their partition counts, migrations."""
    created = await ensure_topics(settings)
    print(f"topics created: {', '.join(created) or 'none (all exist)'}")
    ch = create_clickhouse(settings.clickhouse_url, settings.clickhouse_database, settings.clickhouse_read_policy())
    try:
        applied = await apply_migrations(ch)
    finally:
        ch.close()
    print(f"migrations applied: {', '.join(map(str, applied)) or 'none (up to date)'}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "secrets" and args.action == "generate-key":
        try:
            print(generate_key_spec(args.kid))
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    settings = load_settings(ControlEngineSettings)
    if args.command == "secrets" and args.action == "reseal":
        try:
            count, skipped = runtime.run(reseal(settings))
            print(f"webhooks re-sealed: {count}; skipped (key not in CONFIG_SECRET_KEYS): {skipped}")
        except Exception as exc:
            print(f"error: re-sealing failed: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.command == "setup":
        try:
            runtime.run(setup(settings))
        except Exception as exc:
            print(f"error: set-up failed: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.command == "sessions" and args.action == "token":
        try:
            print(
                mint_session_token(
                    settings, args.tenant, args.role, args.subject, timedelta(minutes=max(args.ttl_minutes, 1))
                )
            )
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.command == "tenants" and args.action == "create":
        try:
            created = runtime.run(create_tenant_via_kafka(settings, args.name, args.plan))
        except Exception as exc:
            print(
                f"error: could not write to Kafka at {settings.kafka_bootstrap_servers}: {exc}",
                file=sys.stderr,
            )
            return 1
        if args.json:
            print(
                orjson.dumps(
                    {
                        "tenant_id": created.tenant.id,
                        "project_id": created.project.id,
                        "api_key_id": created.api_key.id,
                        "api_key": created.secret,
                        "plan": created.tenant.plan,
                    }
                ).decode()
            )
        else:
            print(f"tenant  {created.tenant.id}  ({created.tenant.name}, {created.tenant.plan})")
            print(f"project {created.project.id}  (default)")
            print(f"api key {created.secret}")
            print("The key is shown once: store it now.")
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
