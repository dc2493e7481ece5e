"""PostgreSQL for tests: the server on 127.0.0.1:5432 (``WPNOTIFY_TEST_POSTGRES`` to point
elsewhere) and databases made for a test, named wpnotify_test_<pid>_<random> and dropped after
it (the only databases the tests make or drop). The fixtures ``postgres`` and
``fresh_database`` are in conftest.py."""

from __future__ import annotations

import os
import secrets
from typing import Any

import psycopg

SERVER = os.environ.get("WPNOTIFY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")


def admin(database: str = "postgres") -> Any:
    """A connection as the server's superuser, for making and dropping databases."""
    return psycopg.connect(f"{SERVER}/{database}", autocommit=True, connect_timeout=3)


def make_database() -> str:
    """A new empty database (its name)."""
    name = f"wpnotify_test_{os.getpid()}_{secrets.token_hex(4)}"
    with admin() as db:
        db.execute(f"CREATE DATABASE {name} TEMPLATE template0")
    return name


def drop_database(name: str) -> None:
    with admin() as db:
        db.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
