-- The orchestrator's training runs: what was asked, where it stands, what it
-- produced and decided. JSON columns hold what is only ever read whole.
CREATE TABLE training_runs (
    id VARCHAR(64) NOT NULL PRIMARY KEY,
    status VARCHAR(16) NOT NULL,
    phase VARCHAR(32) NOT NULL,
    requested_by VARCHAR(255) NOT NULL,
    created_at BIGINT NOT NULL,
    started_at BIGINT NULL,
    finished_at BIGINT NULL,
    launcher VARCHAR(16) NOT NULL,
    strategy VARCHAR(32) NOT NULL,
    workers BIGINT NOT NULL,
    rounds BIGINT NOT NULL,
    rounds_done BIGINT NOT NULL DEFAULT 0,
    train_samples BIGINT NOT NULL DEFAULT 0,
    feedback_samples BIGINT NOT NULL DEFAULT 0,
    data_fingerprint VARCHAR(64) NULL,
    candidate_version VARCHAR(128) NULL,
    previous_version VARCHAR(128) NULL,
    candidate_accuracy DOUBLE NULL,
    previous_accuracy DOUBLE NULL,
    promoted BIGINT NOT NULL DEFAULT 0,
    decision TEXT NULL,
    error TEXT NULL,
    round_metrics MEDIUMTEXT NOT NULL,
    worker_samples TEXT NOT NULL,
    attachment TEXT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE INDEX training_runs_created_idx ON training_runs (created_at);
CREATE INDEX training_runs_status_idx ON training_runs (status);
