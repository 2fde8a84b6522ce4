-- zapfn on PostgreSQL: the SQLite schema (shared/store/src/sqlite/schema.sql) with
-- Postgres types. Times are Unix epoch integers like the store API's: seconds, or
-- milliseconds where the column is named *_ms.
--
-- Free text Meta sends (message text, contact names) is bytea holding UTF-8:
-- WhatsApp text may contain NUL, which a Postgres `text` cannot hold. JSON that
-- zapfn keeps exactly as received (`raw`) is `text`: byte for byte, and JSON text
-- never contains a NUL byte. Other JSON documents are `json`, not `jsonb`: jsonb
-- rejects the \u0000 escape. Ids compared by keyset pagination use the "C"
-- collation so their order is byte order whatever the database's locale.

CREATE TABLE conversations (
    id              text COLLATE "C" PRIMARY KEY,
    phone_number_id text NOT NULL,
    wa_id           text NOT NULL,
    contact_name    bytea,
    last_inbound_at bigint,            -- the customer's last message: opens the 24-hour window
    last_message_at bigint NOT NULL,
    created_at      bigint NOT NULL,
    updated_at      bigint NOT NULL,
    UNIQUE (phone_number_id, wa_id)    -- also serves last_inbound_at and the (number, customer) filter
);
-- Listing: by number, by customer, or all, most recent first.
CREATE INDEX conversations_recent ON conversations (phone_number_id, last_message_at DESC, id DESC);
CREATE INDEX conversations_by_wa_id ON conversations (wa_id, last_message_at DESC, id DESC);
CREATE INDEX conversations_all_recent ON conversations (last_message_at DESC, id DESC);

CREATE TABLE messages (
    id              text COLLATE "C" PRIMARY KEY,  -- zapfn id
    wa_message_id   text UNIQUE,       -- Meta's wamid (NULL until an outbound message is sent)
    conversation_id text REFERENCES conversations (id),
    phone_number_id text NOT NULL,
    direction       text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    type            text,
    from_id         text,
    to_id           text,
    text            bytea,             -- UTF-8
    media           json,
    context         json,
    status          text NOT NULL,
    errors          json,              -- Meta's errors[] or the dispatcher's last error
    raw             text,              -- JSON: Meta's object (inbound) or the send body (outbound)
    idempotency_key text,
    dispatch_started_at bigint,        -- a send to Meta began and its outcome is not known yet
    timestamp       bigint NOT NULL,
    created_at      bigint NOT NULL,
    updated_at      bigint NOT NULL
);
CREATE INDEX messages_by_conversation ON messages (conversation_id, timestamp DESC, id DESC);
CREATE UNIQUE INDEX messages_by_idempotency_key ON messages (idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- Every status event, by subject (a wamid, or a zapfn id before the message has one).
CREATE TABLE status_events (
    subject     text NOT NULL,
    status      text NOT NULL,
    timestamp   bigint NOT NULL,
    errors      json,
    raw         text,
    received_at bigint NOT NULL,
    PRIMARY KEY (subject, status)
);

-- Webhook content that is not a message or a status: other fields, errors, unreadable items.
CREATE TABLE raw_events (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    phone_number_id text,
    kind            text NOT NULL,
    raw             text NOT NULL,
    received_at     bigint NOT NULL
);

-- Transactional outbox: the event bus and task queue.
CREATE TABLE outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic           text NOT NULL,
    ordering_key    text,
    payload         json NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    available_at_ms bigint NOT NULL,
    leased_until_ms bigint NOT NULL DEFAULT 0,
    last_error      text,
    created_at_ms   bigint NOT NULL,
    -- Retries stop `max_retry_age` after the first real attempt (as Cloud Tasks'
    -- max retry duration): waiting behind an ordering key or a rate limit does not age an event.
    first_attempt_at_ms bigint
);
-- Claims walk a topic in id order; the ordering index finds a key's older or leased events.
CREATE INDEX outbox_by_topic ON outbox (topic, id);
CREATE INDEX outbox_ordering ON outbox (topic, ordering_key, id) WHERE ordering_key IS NOT NULL;
-- release_leases: the few events in flight.
CREATE INDEX outbox_leased ON outbox (id) WHERE leased_until_ms > 0;

CREATE TABLE dead_letters (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id      bigint,              -- the outbox id; NULL for an event delivered by push
    topic         text NOT NULL,
    ordering_key  text,
    payload       json NOT NULL,
    attempts      integer NOT NULL,
    last_error    text,
    created_at_ms bigint NOT NULL,
    dead_at_ms    bigint NOT NULL
);

CREATE TABLE api_keys (
    key_hash   text PRIMARY KEY,
    name       text NOT NULL,
    created_at bigint NOT NULL,
    revoked_at bigint
);
