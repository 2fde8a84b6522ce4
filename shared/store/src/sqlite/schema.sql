-- zapfn embedded schema (SQLite, WAL). Times are Unix seconds unless named *_ms.
-- `PRAGMA user_version` numbers it; a change bumps it with a migration in mod.rs.
PRAGMA user_version = 3;

CREATE TABLE IF NOT EXISTS conversations (
    id              TEXT PRIMARY KEY,
    phone_number_id TEXT NOT NULL,
    wa_id           TEXT NOT NULL,
    contact_name    TEXT,
    last_inbound_at INTEGER,          -- the customer's last message: opens the 24-hour window
    last_message_at INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (phone_number_id, wa_id)
);
CREATE INDEX IF NOT EXISTS conversations_recent
    ON conversations (phone_number_id, last_message_at DESC, id);

CREATE TABLE IF NOT EXISTS messages (
    id              TEXT PRIMARY KEY,  -- zapfn id
    wa_message_id   TEXT UNIQUE,       -- Meta's wamid (NULL until an outbound message is sent)
    conversation_id TEXT REFERENCES conversations (id),
    phone_number_id TEXT NOT NULL,
    direction       TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    type            TEXT,
    from_id         TEXT,
    to_id           TEXT,
    text            TEXT,
    media           TEXT,              -- JSON
    context         TEXT,              -- JSON
    status          TEXT NOT NULL,
    errors          TEXT,              -- JSON: Meta's errors[] or the dispatcher's last error
    raw             TEXT,              -- JSON: Meta's object (inbound) or the send body (outbound)
    idempotency_key TEXT,
    dispatch_started_at INTEGER,       -- a send to Meta began and its outcome is not known yet
    timestamp       INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_conversation
    ON messages (conversation_id, timestamp DESC, id DESC);
CREATE UNIQUE INDEX IF NOT EXISTS messages_by_idempotency_key
    ON messages (idempotency_key) WHERE idempotency_key IS NOT NULL;

-- Every status event, by subject (a wamid, or a zapfn id before the message has one),
-- once per status and group member ('' when the status is not about one).
CREATE TABLE IF NOT EXISTS status_events (
    subject     TEXT NOT NULL,
    status      TEXT NOT NULL,
    participant TEXT NOT NULL DEFAULT '',
    timestamp   INTEGER NOT NULL,
    errors      TEXT,
    raw         TEXT,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (subject, status, participant)
) WITHOUT ROWID;

-- Webhook content that is not a message or a status: other fields, errors, unreadable items.
CREATE TABLE IF NOT EXISTS raw_events (
    id              INTEGER PRIMARY KEY,
    phone_number_id TEXT,
    kind            TEXT NOT NULL,
    raw             TEXT NOT NULL,
    received_at     INTEGER NOT NULL
);

-- How far the indexer has stored the webhook journal (one row; see journal.rs).
CREATE TABLE IF NOT EXISTS journal_position (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    segment INTEGER NOT NULL,
    offset  INTEGER NOT NULL
);

-- Transactional outbox: the embedded event bus and task queue.
CREATE TABLE IF NOT EXISTS outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    topic           TEXT NOT NULL,
    ordering_key    TEXT,
    payload         TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    available_at_ms INTEGER NOT NULL,
    leased_until_ms INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    created_at_ms   INTEGER NOT NULL,
    -- Retries stop `max_retry_age` after the first real attempt (as Cloud Tasks'
    -- max retry duration): waiting behind an ordering key or a rate limit does not age an event.
    first_attempt_at_ms INTEGER
);
-- Claims walk a topic in id order and stop at their LIMIT (in-flight and
-- not-yet-due events are skipped, so the walk stays short under a backlog).
CREATE INDEX IF NOT EXISTS outbox_by_topic ON outbox (topic, id);
CREATE INDEX IF NOT EXISTS outbox_ordering ON outbox (topic, ordering_key, id) WHERE ordering_key IS NOT NULL;

CREATE TABLE IF NOT EXISTS dead_letters (
    id            INTEGER PRIMARY KEY,
    topic         TEXT NOT NULL,
    ordering_key  TEXT,
    payload       TEXT NOT NULL,
    attempts      INTEGER NOT NULL,
    last_error    TEXT,
    created_at_ms INTEGER NOT NULL,
    dead_at_ms    INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS api_keys (
    key_hash   TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER,
    scopes           TEXT NOT NULL DEFAULT '["admin"]',  -- JSON array of send, read, admin
    phone_number_ids TEXT NOT NULL DEFAULT '["*"]',      -- JSON array; "*" is every number
    rate_per_second  INTEGER                             -- NULL: unlimited
);
CREATE INDEX IF NOT EXISTS api_keys_by_name ON api_keys (name);

-- Every state-changing API call: who, what, when, the answer (never bodies).
CREATE TABLE IF NOT EXISTS audit_log (
    id         INTEGER PRIMARY KEY,
    at_ms      INTEGER NOT NULL,
    key_name   TEXT NOT NULL,
    method     TEXT NOT NULL,
    route      TEXT NOT NULL,
    target     TEXT,
    status     INTEGER NOT NULL,
    request_id TEXT NOT NULL
);
