"""The retrieval service's settings (`HERALD_RETRIEVAL_*`)."""

from __future__ import annotations

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
    alpha: float = 0.5
    embed_threads: int = 1
    search_cache_seconds: float = 30.0  # 0 turns the cache off
