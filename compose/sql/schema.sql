-- fraudgraph PostgreSQL schema: blocklist, its history, flagged transactions, fraud labels.
-- Idempotent: BlocklistStore.migrate() runs this file on every start, under an advisory lock.

CREATE TABLE IF NOT EXISTS blocklist (
    entity_type text             NOT NULL
        CHECK (entity_type IN ('card', 'user', 'device', 'site', 'ip')),
    entity_id   text             NOT NULL,
    reason      text             NOT NULL,
    source      text             NOT NULL
        CHECK (source IN ('rule', 'cypher', 'gnn', 'label', 'manual')),
    score       double precision NOT NULL,
    evidence    jsonb            NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz      NOT NULL DEFAULT now(),
    updated_at  timestamptz      NOT NULL DEFAULT now(),
    expires_at  timestamptz      NULL,      -- TTL; NULL: never expires
    revoked_at  timestamptz      NULL,
    revoked_by  text             NULL,
    PRIMARY KEY (entity_type, entity_id)
);

-- The stream's cache polls "updated_at > watermark".
CREATE INDEX IF NOT EXISTS blocklist_updated_at_idx ON blocklist (updated_at);

-- Every committed change wakes the streams at once (BlocklistListener): the payload
-- is the schema, so daemons on other schemas of the same server ignore it.
CREATE OR REPLACE FUNCTION blocklist_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('fraudgraph_blocklist', TG_TABLE_SCHEMA);
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER blocklist_changed
    AFTER INSERT OR UPDATE OR DELETE ON blocklist
    FOR EACH STATEMENT EXECUTE FUNCTION blocklist_notify();

CREATE TABLE IF NOT EXISTS blocklist_history (
    id          bigserial        PRIMARY KEY,
    entity_type text             NOT NULL,
    entity_id   text             NOT NULL,
    action      text             NOT NULL CHECK (action IN ('add', 'update', 'revoke')),
    reason      text             NULL,
    source      text             NULL,
    score       double precision NULL,
    evidence    jsonb            NULL,
    expires_at  timestamptz      NULL,
    actor       text             NOT NULL,
    at          timestamptz      NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS blocklist_history_entity_idx
    ON blocklist_history (entity_type, entity_id, id);

CREATE TABLE IF NOT EXISTS flagged_transactions (
    transaction_id text             PRIMARY KEY,
    decision       text             NOT NULL CHECK (decision IN ('review', 'block')),
    score          double precision NOT NULL,
    reasons        jsonb            NOT NULL DEFAULT '[]'::jsonb,
    card_id        text             NULL,
    user_id        text             NULL,
    site_id        text             NULL,
    device_id      text             NULL,
    amount_minor   bigint           NULL,
    currency       text             NULL,
    event_time     timestamptz      NOT NULL,
    decided_at     timestamptz      NOT NULL
);

CREATE INDEX IF NOT EXISTS flagged_transactions_event_time_idx
    ON flagged_transactions (event_time);

-- The rest of the transaction's detail, so that its node can be written onto the graph
-- from here (FRAUDGRAPH_GRAPH_DETAIL=flagged: the projection writes none), and when
-- the decision reached the graph: a daemon's worker writes it after the offset commit,
-- so one that stopped in between leaves graphed_at NULL, and the next one to start
-- writes it (GraphAnnotator.resume).  Rows from before these columns were added count
-- as written (the column's default while it is added), new rows start NULL.
ALTER TABLE flagged_transactions
    ADD COLUMN IF NOT EXISTS country           text        NULL,
    ADD COLUMN IF NOT EXISTS ip_address        text        NULL,
    ADD COLUMN IF NOT EXISTS merchant_category text        NULL,
    ADD COLUMN IF NOT EXISTS card_present      boolean     NULL,
    ADD COLUMN IF NOT EXISTS graphed_at        timestamptz NULL DEFAULT now();
ALTER TABLE flagged_transactions ALTER COLUMN graphed_at DROP DEFAULT;

CREATE INDEX IF NOT EXISTS flagged_transactions_ungraphed_idx
    ON flagged_transactions (decided_at) WHERE graphed_at IS NULL;

CREATE TABLE IF NOT EXISTS fraud_labels (
    transaction_id text        PRIMARY KEY,
    label          text        NOT NULL CHECK (label IN ('fraud', 'genuine')),
    source         text        NOT NULL,
    reported_at    timestamptz NOT NULL,
    card_id        text        NULL,
    user_id        text        NULL,
    site_id        text        NULL,
    received_at    timestamptz NOT NULL DEFAULT now()
);

-- Every label report as it came (append-only): the learned model's training reads the
-- labels as they stood at its as-of time, so a later report (a retraction, a second
-- report) never changes a model trained before it.  fraud_labels keeps the latest.
CREATE TABLE IF NOT EXISTS fraud_label_reports (
    transaction_id text        NOT NULL,
    label          text        NOT NULL CHECK (label IN ('fraud', 'genuine')),
    reported_at    timestamptz NOT NULL,
    PRIMARY KEY (transaction_id, reported_at, label)
);

-- The GNN model registry: one row per trained model; artifacts on disk at `path`.
-- At most one champion (promoted = true) is used for scoring.
CREATE TABLE IF NOT EXISTS gnn_models (
    version      text             PRIMARY KEY,
    trained_at   timestamptz      NOT NULL DEFAULT now(),
    data_from_ms bigint           NOT NULL,     -- event-time window of the graph
    data_to_ms   bigint           NOT NULL,
    cut_ms       bigint           NOT NULL,     -- training labels at or before, validation after
    entities     integer          NOT NULL,
    metric       double precision NOT NULL,     -- validation average precision (all targets)
    metrics      jsonb            NOT NULL,     -- per target, the baseline's, timings
    config       jsonb            NOT NULL,
    path         text             NOT NULL,
    promoted     boolean          NOT NULL DEFAULT false,
    promoted_at  timestamptz      NULL
);

CREATE UNIQUE INDEX IF NOT EXISTS gnn_models_one_champion ON gnn_models (promoted) WHERE promoted;

-- The learned per-transaction models (fraudgraph model train): the same registry and
-- promotion rule as the GNN's, the artifact (LightGBM's text model, its feature
-- columns and thresholds, JSON) in the row itself.
CREATE TABLE IF NOT EXISTS risk_models (
    version      text             PRIMARY KEY,
    trained_at   timestamptz      NOT NULL DEFAULT now(),
    data_from_ms bigint           NOT NULL,     -- event-time window of the logged vectors
    data_to_ms   bigint           NOT NULL,
    cut_ms       bigint           NOT NULL,     -- labels reported by then (the as-of time)
    entities     integer          NOT NULL,     -- settled training rows
    metric       double precision NOT NULL,     -- validation-window average precision
    metrics      jsonb            NOT NULL,
    config       jsonb            NOT NULL,     -- includes the feature schema version
    path         text             NOT NULL,     -- '' (the artifact is in this row)
    promoted     boolean          NOT NULL DEFAULT false,
    promoted_at  timestamptz      NULL,
    artifact     text             NOT NULL DEFAULT ''
);

CREATE UNIQUE INDEX IF NOT EXISTS risk_models_one_champion ON risk_models (promoted) WHERE promoted;
