from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SearchMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEARCH_MODE_UNSPECIFIED: _ClassVar[SearchMode]
    SEARCH_MODE_HYBRID: _ClassVar[SearchMode]
    SEARCH_MODE_BM25: _ClassVar[SearchMode]
    SEARCH_MODE_VECTOR: _ClassVar[SearchMode]

class Rerank(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RERANK_UNSPECIFIED: _ClassVar[Rerank]
    RERANK_NONE: _ClassVar[Rerank]
    RERANK_FUSION: _ClassVar[Rerank]
    RERANK_LLM: _ClassVar[Rerank]
SEARCH_MODE_UNSPECIFIED: SearchMode
SEARCH_MODE_HYBRID: SearchMode
SEARCH_MODE_BM25: SearchMode
SEARCH_MODE_VECTOR: SearchMode
RERANK_UNSPECIFIED: Rerank
RERANK_NONE: Rerank
RERANK_FUSION: Rerank
RERANK_LLM: Rerank

class SearchFilters(_message.Message):
    __slots__ = ("collections", "tags", "doc_ids")
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    DOC_IDS_FIELD_NUMBER: _ClassVar[int]
    collections: _containers.RepeatedScalarFieldContainer[str]
    tags: _containers.RepeatedScalarFieldContainer[str]
    doc_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, collections: _Optional[_Iterable[str]] = ..., tags: _Optional[_Iterable[str]] = ..., doc_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("tenant", "query", "k", "filters", "mode", "rerank")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    RERANK_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    query: str
    k: int
    filters: SearchFilters
    mode: SearchMode
    rerank: Rerank
    def __init__(self, tenant: _Optional[str] = ..., query: _Optional[str] = ..., k: _Optional[int] = ..., filters: _Optional[_Union[SearchFilters, _Mapping]] = ..., mode: _Optional[_Union[SearchMode, str]] = ..., rerank: _Optional[_Union[Rerank, str]] = ...) -> None: ...

class Passage(_message.Message):
    __slots__ = ("chunk_id", "doc_id", "collection", "title", "section_path", "text", "score", "start", "end")
    CHUNK_ID_FIELD_NUMBER: _ClassVar[int]
    DOC_ID_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    SECTION_PATH_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    chunk_id: str
    doc_id: str
    collection: str
    title: str
    section_path: _containers.RepeatedScalarFieldContainer[str]
    text: str
    score: float
    start: int
    end: int
    def __init__(self, chunk_id: _Optional[str] = ..., doc_id: _Optional[str] = ..., collection: _Optional[str] = ..., title: _Optional[str] = ..., section_path: _Optional[_Iterable[str]] = ..., text: _Optional[str] = ..., score: _Optional[float] = ..., start: _Optional[int] = ..., end: _Optional[int] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("passages", "answerable", "answerable_score", "answerable_threshold", "answerable_reason", "answerable_features")
    class AnswerableFeaturesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    PASSAGES_FIELD_NUMBER: _ClassVar[int]
    ANSWERABLE_FIELD_NUMBER: _ClassVar[int]
    ANSWERABLE_SCORE_FIELD_NUMBER: _ClassVar[int]
    ANSWERABLE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    ANSWERABLE_REASON_FIELD_NUMBER: _ClassVar[int]
    ANSWERABLE_FEATURES_FIELD_NUMBER: _ClassVar[int]
    passages: _containers.RepeatedCompositeFieldContainer[Passage]
    answerable: bool
    answerable_score: float
    answerable_threshold: float
    answerable_reason: str
    answerable_features: _containers.ScalarMap[str, float]
    def __init__(self, passages: _Optional[_Iterable[_Union[Passage, _Mapping]]] = ..., answerable: bool = ..., answerable_score: _Optional[float] = ..., answerable_threshold: _Optional[float] = ..., answerable_reason: _Optional[str] = ..., answerable_features: _Optional[_Mapping[str, float]] = ...) -> None: ...

class GroundRequest(_message.Message):
    __slots__ = ("tenant", "draft", "evidence_ids")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    DRAFT_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_IDS_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    draft: str
    evidence_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, tenant: _Optional[str] = ..., draft: _Optional[str] = ..., evidence_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class Claim(_message.Message):
    __slots__ = ("kind", "text", "value", "start", "end", "supported", "passage_id", "reason")
    KIND_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    SUPPORTED_FIELD_NUMBER: _ClassVar[int]
    PASSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    kind: str
    text: str
    value: str
    start: int
    end: int
    supported: bool
    passage_id: str
    reason: str
    def __init__(self, kind: _Optional[str] = ..., text: _Optional[str] = ..., value: _Optional[str] = ..., start: _Optional[int] = ..., end: _Optional[int] = ..., supported: bool = ..., passage_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class GroundResponse(_message.Message):
    __slots__ = ("claims", "grounded", "unknown_evidence_ids")
    CLAIMS_FIELD_NUMBER: _ClassVar[int]
    GROUNDED_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_EVIDENCE_IDS_FIELD_NUMBER: _ClassVar[int]
    claims: _containers.RepeatedCompositeFieldContainer[Claim]
    grounded: bool
    unknown_evidence_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, claims: _Optional[_Iterable[_Union[Claim, _Mapping]]] = ..., grounded: bool = ..., unknown_evidence_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class RecallRequest(_message.Message):
    __slots__ = ("tenant", "contact_id", "query", "k")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    CONTACT_ID_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    contact_id: str
    query: str
    k: int
    def __init__(self, tenant: _Optional[str] = ..., contact_id: _Optional[str] = ..., query: _Optional[str] = ..., k: _Optional[int] = ...) -> None: ...

class Memory(_message.Message):
    __slots__ = ("memory_id", "tier", "kind", "text", "occurred_at", "score", "contact_id")
    MEMORY_ID_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    CONTACT_ID_FIELD_NUMBER: _ClassVar[int]
    memory_id: str
    tier: str
    kind: str
    text: str
    occurred_at: str
    score: float
    contact_id: str
    def __init__(self, memory_id: _Optional[str] = ..., tier: _Optional[str] = ..., kind: _Optional[str] = ..., text: _Optional[str] = ..., occurred_at: _Optional[str] = ..., score: _Optional[float] = ..., contact_id: _Optional[str] = ...) -> None: ...

class RecallResponse(_message.Message):
    __slots__ = ("memories",)
    MEMORIES_FIELD_NUMBER: _ClassVar[int]
    memories: _containers.RepeatedCompositeFieldContainer[Memory]
    def __init__(self, memories: _Optional[_Iterable[_Union[Memory, _Mapping]]] = ...) -> None: ...

class LabelledText(_message.Message):
    __slots__ = ("label", "text")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    label: str
    text: str
    def __init__(self, label: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class ResembleRequest(_message.Message):
    __slots__ = ("text", "examples")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    text: str
    examples: _containers.RepeatedCompositeFieldContainer[LabelledText]
    def __init__(self, text: _Optional[str] = ..., examples: _Optional[_Iterable[_Union[LabelledText, _Mapping]]] = ...) -> None: ...

class LabelScore(_message.Message):
    __slots__ = ("label", "score")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    label: str
    score: float
    def __init__(self, label: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class ResembleResponse(_message.Message):
    __slots__ = ("scores",)
    SCORES_FIELD_NUMBER: _ClassVar[int]
    scores: _containers.RepeatedCompositeFieldContainer[LabelScore]
    def __init__(self, scores: _Optional[_Iterable[_Union[LabelScore, _Mapping]]] = ...) -> None: ...
