-- Idempotent creation. A client may send `Idempotency-Key` with a new comment
-- or article; what the key created is kept here for a day, so a retry answers
-- the original instead of creating again. The key is the client's, per user
-- and per scope (`article`, or `comment:<article id>`), compared byte for byte
-- (ASCII, binary collation); a row is written in the same transaction as what
-- it created, so neither exists without the other.
CREATE TABLE idempotency_keys (
    user_id BIGINT NOT NULL,
    scope VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    idem_key VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    resource_id BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, scope, idem_key),
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

-- The sentiment back-fill counts how often inference refused a pending
-- comment on its own; one it can never score is skipped instead of blocking
-- the comments after it.
ALTER TABLE comments ADD COLUMN sentiment_attempts BIGINT NOT NULL DEFAULT 0;
