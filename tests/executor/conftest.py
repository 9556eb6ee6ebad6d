"""Fixtures of the executor's adapter tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from herald_executor.adapters.calendar import MeetingTool


@pytest.fixture
async def tools(stack) -> AsyncIterator[list[MeetingTool]]:  # type: ignore[no-untyped-def]
    """Meeting tools on the stack, closed after the test (`test_meeting_tool.make(**settings)` adds one)."""
    made: list[MeetingTool] = []
    yield made
    for tool in made:
        await tool.close()
        await tool.sender.close()
