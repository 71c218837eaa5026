#!/usr/bin/env python3
"""Make the secret files ``deploy/compose.yaml`` reads (random passwords; stdlib only).

    python3 deploy/compose-secrets.py [--dir deploy/secrets] [--force]

Writes ``amqp_url`` and ``state_url`` (the connector's broker and PostgreSQL URLs),
``postgres_password`` and ``rabbitmq_users.json`` (the ``ivpush`` user, its permissions and the
``/`` vhost, as RabbitMQ definitions with a salted SHA-256 password hash). The files are
world-readable on purpose: compose bind-mounts them with their host modes and the containers read
them as other users (RabbitMQ 999, PostgreSQL 999, ivpush 10001). No trailing newline: some
readers take the file as is. Keep the directory private to
your account; for anything beyond one machine use your orchestrator's secrets instead.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import secrets
import sys
from pathlib import Path

USER = "ivpush"
FILES = ("amqp_url", "state_url", "postgres_password", "rabbitmq_users.json")


def rabbitmq_password_hash(password: str) -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256``: base64(salt + sha256(salt + password))."""
    salt = secrets.token_bytes(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def users_definitions(password: str) -> dict[str, object]:
    """The vhost, user and permissions RabbitMQ loads at boot beside the topology."""
    return {
        "vhosts": [{"name": "/"}],
        "users": [
            {
                "name": USER,
                "password_hash": rabbitmq_password_hash(password),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": "management",
            }
        ],
        "permissions": [{"user": USER, "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}],
    }


def main(argv: list[str] | None = None) -> int:
    """Write the four files, refusing to overwrite existing ones without ``--force``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path(__file__).resolve().parent / "secrets")
    parser.add_argument("--force", action="store_true", help="overwrite existing files")
    args = parser.parse_args(argv)
    existing = [name for name in FILES if (args.dir / name).exists()]
    if existing and not args.force:
        print(f"error: {args.dir} already has {', '.join(existing)} (use --force to replace)", file=sys.stderr)
        return 1
    amqp_password = secrets.token_urlsafe(24)
    pg_password = secrets.token_urlsafe(24)
    contents = {
        "amqp_url": f"amqp://{USER}:{amqp_password}@rabbitmq:5672/%2F",
        "state_url": f"postgresql://{USER}:{pg_password}@postgres:5432/{USER}",
        "postgres_password": pg_password,
        "rabbitmq_users.json": json.dumps(users_definitions(amqp_password), indent=2) + "\n",
    }
    args.dir.mkdir(parents=True, exist_ok=True)
    for name, text in contents.items():
        path = args.dir / name
        path.write_text(text, encoding="utf-8")
        path.chmod(0o644)
    print(f"wrote {', '.join(FILES)} to {args.dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
