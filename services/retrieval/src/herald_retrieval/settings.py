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
    rerank_depth: int = 30  # candidates per first-stage list that the re-ranker sees
    embed_threads: int = 1
    search_cache_seconds: float = 30.0  # 0 turns the cache off
