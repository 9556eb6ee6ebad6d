-- The knowledge base's document registry: what each tenant's Weaviate tenant holds, by document.
-- Re-submitting the same content is recognised by its hash and costs no embedding.
CREATE TABLE documents (
    tenant       text        NOT NULL,
    doc_id       text        NOT NULL,
    collection   text        NOT NULL,
    title        text        NOT NULL,
    media_type   text        NOT NULL,
    content_hash text        NOT NULL,
    chunks       integer     NOT NULL,
    source_uri   text,
    indexed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, doc_id)
);
