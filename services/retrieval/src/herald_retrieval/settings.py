"""The retrieval service's settings (`HERALD_RETRIEVAL_*`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from herald_core.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="HERALD_RETRIEVAL_", extra="ignore")

    grpc_host: str = "127.0.0.1"
    grpc_port: int = 8202
    weaviate_host: str = "127.0.0.1"
    weaviate_http_port: int = 18090
    weaviate_grpc_port: int = 18091
    collection: str = "KnowledgeChunk"
    alpha: float = 0.6  # hybrid weight of the vector (0 = BM25 alone); chosen on the shipped eval set
    rerank: str = Field(default="none", pattern="^(none|fusion|llm)$", description="Default re-ranker.")
    rerank_depth: int = 30  # candidates per first-stage list that the fusion re-ranker sees
    llm_rerank_model: str = "claude-haiku-4-5"  # used when ANTHROPIC_API_KEY is set
    llm_rerank_depth: int = 20  # candidates the LLM orders
    embed_threads: int = 1
    search_cache_seconds: float = 30.0  # 0 turns the cache off
    vocabulary_refresh_seconds: float = Field(
        default=30.0, ge=0, description="At most how often a changed knowledge base's vocabulary is rebuilt"
    )
    memory_collection: str = "Memory"
    memory_ttl_days: float = Field(default=90, gt=0, description="How long an interaction stays in medium-term memory")
    memory_sweep_seconds: float = Field(default=3600, gt=0, description="How often expired interactions are folded")
