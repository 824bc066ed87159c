-- Human handover: agents, tickets, private notes, notifications.

-- Which agent wrote an agent message (author = 'agent').
ALTER TABLE messages ADD COLUMN agent_id TEXT;

-- People who answer escalated conversations. Agents may also be defined in
-- kefu.toml; these are the ones created with `kefu agent add`.
CREATE TABLE agents (
    -- The login name: lower-case letters, digits, - and _.
    id TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    -- agent | supervisor
    role TEXT NOT NULL,
    -- argon2id PHC string of the agent's token; the token itself is never stored.
    token_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    disabled_at BIGINT
);

-- A conversation waiting for, or held by, a person.
CREATE TABLE tickets (
    id BIGSERIAL PRIMARY KEY,
    conversation_id BIGINT NOT NULL REFERENCES conversations (id),
    -- open (waiting for an agent) | claimed (an agent holds it) | resolved
    state TEXT NOT NULL,
    -- 0 urgent (dispute risk), 1 high (complaint, bad-review threat, anger),
    -- 2 normal; the queue is ordered by priority, then by waiting time.
    priority BIGINT NOT NULL,
    -- The kind of the first reason (needs_person, dispute, no_match …) and
    -- the sentence an agent reads.
    reason TEXT NOT NULL,
    detail TEXT,
    -- Who holds it (claimed), or held it last (resolved).
    agent_id TEXT,
    -- resolved: settled by the agent | handed_back: the bot answers again
    resolution TEXT,
    -- When it was (re)opened: the queue's waiting time starts here.
    opened_at BIGINT NOT NULL,
    claimed_at BIGINT,
    resolved_at BIGINT,
    reopened BIGINT NOT NULL DEFAULT 0,
    -- The buyer's newest message.
    last_buyer_at BIGINT NOT NULL,
    -- The platform's reply deadline for the oldest buyer message no person
    -- has answered yet; NULL once an agent replied.
    reply_due_at BIGINT,
    deadline_notified BIGINT NOT NULL DEFAULT 0,
    -- SLA notices sent while unclaimed: 0 none yet, 1 new escalation,
    -- 2 reminder, 3 supervisor; sla_next_at = when the next is due
    -- (NULL: nothing more to send).
    sla_level BIGINT NOT NULL DEFAULT 0,
    sla_next_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
-- At most one unresolved ticket per conversation.
CREATE UNIQUE INDEX tickets_one_active ON tickets (conversation_id) WHERE state <> 'resolved';
CREATE INDEX tickets_queue ON tickets (state, priority, opened_at);
CREATE INDEX tickets_by_conversation ON tickets (conversation_id, id);
CREATE INDEX tickets_sla ON tickets (sla_next_at);

-- Agents' private notes on a ticket; never sent to the buyer.
CREATE TABLE notes (
    id BIGSERIAL PRIMARY KEY,
    ticket_id BIGINT NOT NULL REFERENCES tickets (id),
    agent_id TEXT NOT NULL,
    text TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX notes_by_ticket ON notes (ticket_id, id);

-- Notices to the team's chat (new escalations, SLA breaches), delivered with
-- retries like replies: the body is stored exactly as it is POSTed.
CREATE TABLE notifications (
    id BIGSERIAL PRIMARY KEY,
    -- The [notify.<name>] target.
    target TEXT NOT NULL,
    -- escalation | sla_reminder | sla_supervisor | reply_deadline
    event TEXT NOT NULL,
    ticket_id BIGINT REFERENCES tickets (id),
    body TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    -- pending | delivered | dead
    state TEXT NOT NULL DEFAULT 'pending',
    last_error TEXT,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT
);
CREATE INDEX notifications_due ON notifications (state, next_attempt_at);
