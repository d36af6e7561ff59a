-- Who corrected a comment's sentiment. The blog shows a correction at once,
-- but the labeler trusts it as a training label only when the corrector is an
-- admin; an article author's correction goes to the review queue, capped per
-- corrector (docs/feedback.md, "Corrections").
ALTER TABLE comments
    ADD COLUMN sentiment_corrected_by BIGINT NULL,
    ADD CONSTRAINT comment_corrector_fk FOREIGN KEY (sentiment_corrected_by)
        REFERENCES users (id) ON DELETE SET NULL;

-- The corrector of a sample that came from a correction, to cap how many of
-- one user's corrections wait for review.
ALTER TABLE training_samples
    ADD COLUMN corrected_by BIGINT NULL,
    ADD CONSTRAINT training_sample_corrector_fk FOREIGN KEY (corrected_by)
        REFERENCES users (id) ON DELETE SET NULL;
CREATE INDEX training_samples_corrector_idx ON training_samples (corrected_by, status, updated_at);
