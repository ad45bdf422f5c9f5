"""The scaled deployment as shipped: docker-compose.yml, its nginx, the Dockerfile.

Nothing here starts containers (no Docker in CI); it checks what the files promise:
PostgreSQL and Redis, the schema migrated once before any hub process, two web processes
and two workers of the same image, and a proxy that balances HTTP and WebSockets.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from hub.cli import _parser

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_compose_runs_postgres_redis_two_webs_two_workers_and_a_proxy() -> None:
    services = _compose()["services"]
    roles = {name: spec.get("command", [None, None])[1] for name, spec in services.items()}
    assert [n for n, r in roles.items() if r == "web"] == ["web1", "web2"]
    assert [n for n, r in roles.items() if r == "worker"] == ["worker1", "worker2"]
    assert roles["migrate"] == "migrate"
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    assert services["proxy"]["image"].startswith("nginx:")


def test_every_hub_process_is_the_same_image_on_postgres_and_redis_after_migrate() -> None:
    services = _compose()["services"]
    for name in ("web1", "web2", "worker1", "worker2"):
        spec = services[name]
        assert spec["image"] == services["migrate"]["image"]
        env = spec["environment"]
        assert env["OMNIHUB_DATABASE_URL"].startswith("postgresql://")
        assert env["OMNIHUB_REDIS_URL"].startswith("redis://")
        assert env["OMNIHUB_MIGRATE_ON_START"] == "false"  # only `migrate` migrates
        subnet = _compose()["networks"]["default"]["ipam"]["config"][0]["subnet"]
        assert env["OMNIHUB_TRUSTED_PROXIES"] == subnet  # nginx's X-Forwarded-For counts
        assert spec["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_every_command_in_compose_is_one_the_cli_accepts() -> None:
    parser = _parser()
    for spec in _compose()["services"].values():
        command = spec.get("command")
        if command and command[0] == "omnihub":
            parser.parse_args(command[1:])  # exits (SystemExit) on an unknown option


def test_the_proxy_balances_both_webs_and_passes_websockets() -> None:
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    upstream = re.search(r"upstream omnihub_web \{(.*?)\}", conf, re.S)
    assert upstream is not None
    assert re.findall(r"server (\w+):8080", upstream.group(1)) == ["web1", "web2"]
    assert "proxy_set_header Upgrade $http_upgrade;" in conf
    assert "proxy_set_header Connection $connection_upgrade;" in conf
    assert "non_idempotent" not in conf  # a POST is never sent twice by the proxy
    mounted = _compose()["services"]["proxy"]["volumes"]
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in mounted


def test_the_image_carries_the_drivers_of_every_role() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'pip install --no-cache-dir ".[postgres,redis]"' in dockerfile
