-- Conversations: one per (channel, conversation id on that channel).
CREATE TABLE conversations (
    id BIGSERIAL PRIMARY KEY,
    channel TEXT NOT NULL,
    external_id TEXT NOT NULL,
    buyer_id TEXT,
    buyer_name TEXT,
    buyer_locale TEXT,
    buyer_country TEXT,
    lang TEXT,
    -- bot: kefu answers; human: an agent holds it and kefu stays silent.
    state TEXT NOT NULL DEFAULT 'bot',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (channel, external_id)
);

-- Every message of every conversation: the transcript, evidence in a dispute.
CREATE TABLE messages (
    id BIGSERIAL PRIMARY KEY,
    conversation_id BIGINT NOT NULL REFERENCES conversations (id),
    channel TEXT NOT NULL,
    -- The channel's message id (inbound); NULL for kefu's own messages.
    external_id TEXT,
    author TEXT NOT NULL,
    text TEXT NOT NULL,
    attachments TEXT,
    lang TEXT,
    intents TEXT,
    decision TEXT,
    sent_at BIGINT,
    created_at BIGINT NOT NULL,
    -- Buyer messages: when kefu handled them; NULL = still to do.
    processed_at BIGINT,
    UNIQUE (channel, external_id)
);
CREATE INDEX messages_by_conversation ON messages (conversation_id, id);
CREATE INDEX messages_unprocessed ON messages (processed_at, author);

-- Replies waiting for delivery, delivered, or given up on.
CREATE TABLE outbox (
    id BIGSERIAL PRIMARY KEY,
    conversation_id BIGINT NOT NULL REFERENCES conversations (id),
    message_id BIGINT NOT NULL REFERENCES messages (id),
    channel TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    last_error TEXT,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
CREATE INDEX outbox_by_conversation ON outbox (conversation_id, state, id);

-- Conversations handed to people, and why.
CREATE TABLE escalations (
    id BIGSERIAL PRIMARY KEY,
    conversation_id BIGINT NOT NULL REFERENCES conversations (id),
    reason TEXT NOT NULL,
    detail TEXT,
    state TEXT NOT NULL DEFAULT 'open',
    created_at BIGINT NOT NULL
);
CREATE INDEX escalations_by_conversation ON escalations (conversation_id);

-- Poller positions (Telegram offset, marketplace cursor).
CREATE TABLE cursors (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
