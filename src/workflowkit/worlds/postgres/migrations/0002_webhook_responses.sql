CREATE TABLE webhook_responses (
    reply_to text PRIMARY KEY,
    payload bytea NOT NULL,
    created_at timestamptz NOT NULL
);
