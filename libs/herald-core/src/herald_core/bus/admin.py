"""Creating the topic table's topics (local stack, tests; in production the Strimzi resources do)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from herald_core.bus.messages import BusNames
from herald_core.settings import CommonSettings
from herald_core.topics import TopicSpec, all_topics


async def ensure_topics(common: CommonSettings, specs: Sequence[TopicSpec] | None = None) -> list[str]:
    """Create the topic table's topics under the configured prefix; return those created."""
    names = BusNames(common.topic_prefix)
    admin = AIOKafkaAdminClient(bootstrap_servers=common.kafka_bootstrap)
    await admin.start()
    created: list[str] = []
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(names(spec), spec.partitions, 1, topic_configs=spec.config())
            for spec in (specs or all_topics())
            if names(spec) not in existing
        ]
        if wanted:
            try:
                await admin.create_topics(wanted)
            except TopicAlreadyExistsError:
                pass
            created = [t.name for t in wanted]
            await _wait_for_leaders(admin, created)
    finally:
        await admin.close()
    return created


async def _wait_for_leaders(admin: AIOKafkaAdminClient, topics: list[str], timeout: float = 30.0) -> None:
    """New partitions answer NOT_ENOUGH_REPLICAS until their leader and ISR settle; wait for that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = await admin.describe_topics(topics)
        if all(
            d.get("error_code", 0) == 0
            and d.get("partitions")
            and all(p.get("leader", -1) >= 0 and p.get("isr") for p in d["partitions"])
            for d in described
        ):
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"topics without a leader after {timeout}s: {topics}")
