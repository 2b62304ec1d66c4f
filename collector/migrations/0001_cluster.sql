-- Hopline's cluster metastore: the splits in object storage and the live nodes.
-- A split is searchable only in state 'published'; deletion marks it first.

CREATE TABLE splits (
    id           TEXT PRIMARY KEY,
    signal       TEXT NOT NULL CHECK (signal IN ('spans', 'logs')),
    tenant       TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('staged', 'published', 'marked_for_deletion')),
    -- The node that made the split.
    node         TEXT NOT NULL,
    -- Oldest and newest record, ns since the epoch.
    min_time     BIGINT NOT NULL,
    max_time     BIGINT NOT NULL,
    num_docs     BIGINT NOT NULL,
    bytes        BIGINT NOT NULL,
    -- The split's files (object names under its prefix) and their sizes.
    files        TEXT[] NOT NULL,
    file_sizes   BIGINT[] NOT NULL,
    -- What lets a search skip the split without opening it.
    services     TEXT[] NOT NULL,
    -- Log levels (error, warn, ...) present; empty for spans.
    levels       TEXT[] NOT NULL,
    trace_filter BYTEA NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX splits_by_time ON splits (tenant, signal, state, max_time);

CREATE TABLE nodes (
    id         TEXT PRIMARY KEY,
    role       TEXT NOT NULL,
    -- Where other nodes reach its query API (host:port).
    address    TEXT NOT NULL,
    heartbeat  TIMESTAMPTZ NOT NULL
);
