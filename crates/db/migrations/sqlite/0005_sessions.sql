-- Sessions live in the database, so that a restart or a Redis outage logs
-- nobody out; Redis (when there is one) only caches them. `id` is the random
-- session id a token carries; a token counts only while its row exists and
-- has not expired.
CREATE TABLE sessions (
    id VARCHAR(64) NOT NULL PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX session_user_idx ON sessions (user_id);
CREATE INDEX session_expiry_idx ON sessions (expires_at);

-- A canonical form of each username (NFKC, case-folded, confusable characters
-- mapped to one prototype), unique, so that `аlice` with a Cyrillic а cannot
-- be registered beside `alice`. Filled for older rows by the blog at start.
ALTER TABLE users ADD COLUMN username_skeleton VARCHAR(255) NULL;
CREATE UNIQUE INDEX user_username_skeleton_key ON users (username_skeleton);
