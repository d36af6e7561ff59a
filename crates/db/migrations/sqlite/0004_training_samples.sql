-- The feedback loop. A comment waits for the labeler while `label_state` is
-- NULL (a new comment, or one whose sentiment a human just corrected); the
-- labeler sets it when it is done (`labeled`, `duplicate`, `failed`), or
-- counts an attempt and sets `label_after` to retry later.
ALTER TABLE comments ADD COLUMN label_state VARCHAR(16) NULL;
ALTER TABLE comments ADD COLUMN label_attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE comments ADD COLUMN label_after BIGINT NULL;
CREATE INDEX comments_label_idx ON comments (label_state, id);

-- Weakly labelled (or corrected) comments as training data: the masked text,
-- once per normalised text (`text_hash`), with who labelled it and how sure,
-- what the model thought, whether it may be trained on, and the last run that did.
CREATE TABLE training_samples (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    text TEXT NOT NULL,
    text_hash VARCHAR(64) NOT NULL,
    label VARCHAR(16) NOT NULL,
    source VARCHAR(16) NOT NULL,
    confidence DOUBLE NOT NULL,
    labeler VARCHAR(255) NOT NULL,
    topics TEXT NOT NULL,
    reason TEXT NULL,
    model_label VARCHAR(16) NULL,
    model_score DOUBLE NULL,
    model_version VARCHAR(128) NULL,
    status VARCHAR(16) NOT NULL,
    status_reason VARCHAR(32) NULL,
    comment_id INTEGER NULL REFERENCES comments (id) ON DELETE CASCADE,
    author_id INTEGER NULL REFERENCES users (id) ON DELETE CASCADE,
    shard_key VARCHAR(128) NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    used_by_run VARCHAR(64) NULL,
    used_at BIGINT NULL,
    CONSTRAINT training_sample_text_key UNIQUE (text_hash)
);
CREATE INDEX training_samples_status_idx ON training_samples (status, id);
CREATE INDEX training_samples_comment_idx ON training_samples (comment_id);
CREATE INDEX training_samples_author_idx ON training_samples (author_id);
