"""The planner's settings (`HERALD_PLANNER_*`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from herald_core.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="HERALD_PLANNER_", extra="ignore")

    retrieval_target: str = Field(default="127.0.0.1:8202", description="host:port of the retrieval gRPC API.")
    retrieval_timeout_seconds: float = 5.0
    evidence_k: int = 4
    memory_k: int = 5  # memories recalled for a plan (recent interactions, summaries, reviewer feedback)
    anthropic_model: str = "claude-sonnet-5"
    anthropic_max_tokens: int = 800
    executor_url: str = Field(
        default="http://127.0.0.1:8106",
        description="The executor's HTTP API, where read-only tools are answered: what the LLM may consult, and the "
        "free slots a meeting request is booked into (empty: neither).",
    )
    executor_timeout_seconds: float = 5.0
    ingest_url: str = Field(
        default="http://127.0.0.1:8101",
        description="Ingest's HTTP API, where a campaign task's segment is read from the contact store.",
    )
    ingest_timeout_seconds: float = 10.0
    task_evidence_k: int = Field(default=6, ge=1, le=20, description="Passages a campaign task retrieves on its topic.")
    task_max_steps: int = Field(
        default=6,
        ge=1,
        le=12,
        description="Messages API calls planning a free-text task may take; the last must brief.",
    )
    max_tool_rounds: int = Field(
        default=3,
        ge=1,
        description="Messages API calls one LLM draft may take; the last must draft, so 1 reads no tool.",
    )
    concurrency: int = 16  # messages of different contacts handled at once
    clock_offset_seconds: float = Field(
        default=0.0,
        description="Moves the planner's clock (timers, business-day waits) for drills; 0 in production. Move the "
        "guard's by as much, or its caps and send windows see a different day.",
    )
    timer_poll_seconds: float = Field(default=0.5, gt=0, description="How often due timers are looked for.")
    timer_lease_seconds: float = Field(
        default=120.0,
        gt=0,
        description="How long a replica holds a timer it is publishing; after that another replica publishes it "
        "again (the run takes it once either way).",
    )
    keep_days: float = Field(
        default=180.0,
        gt=0,
        description="How long the contacts' recorded activity and finished timers are kept; a run reads only what "
        "happened since it started, so this bounds how long a sequence can wait for an answer.",
    )
