"""Session fixtures: the real stack, started once (or reused), and isolation by name.

`HERALD_TEST_KAFKA` / `HERALD_TEST_PG_DSN` point the suite at external servers; otherwise
the local stack is started (idempotently) with the same code `make up` uses. Each session gets
its own topic prefix and database, so runs never see each other's messages or rows.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from herald_stack.cli import up
from herald_stack.config import StackConfig


@dataclass(frozen=True)
class Stack:
    config: StackConfig
    kafka_bootstrap: str
    pg_dsn: str


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    config = StackConfig()
    external_kafka = os.environ.get("HERALD_TEST_KAFKA")
    external_pg = os.environ.get("HERALD_TEST_PG_DSN")
    if not (external_kafka and external_pg):
        up(config, topics=False)
    yield Stack(config, external_kafka or config.kafka_bootstrap, external_pg or config.pg_dsn)
