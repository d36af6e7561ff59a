-- What every article listing shows, kept on the article row so a page of
-- articles is one indexed read: the favourite count (changed in the same
-- transaction as `favorites`) and the sorted tag names joined by U+001F
-- (tags are set at creation; `article_tags` stays the source for filters).
ALTER TABLE articles
    ADD COLUMN favorites_count BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN tag_list VARCHAR(450) NOT NULL DEFAULT '';

UPDATE articles a SET favorites_count = (SELECT COUNT(*) FROM favorites f WHERE f.article_id = a.id);
UPDATE articles a SET tag_list = COALESCE((
    SELECT TRIM(TRAILING CHAR(31 USING utf8mb4) FROM
        GROUP_CONCAT(CONCAT(t.name, CHAR(31 USING utf8mb4)) ORDER BY t.name SEPARATOR ''))
    FROM article_tags at JOIN tags t ON t.id = at.tag_id WHERE at.article_id = a.id
), '');

-- Listings are newest first by id (ids grow with creation), per author too;
-- the new index serves the author foreign key before the old one goes.
CREATE INDEX article_author_recent_idx ON articles (author_id, id);
DROP INDEX article_created_idx ON articles;
DROP INDEX article_author_idx ON articles;
