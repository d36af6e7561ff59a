-- What every article listing shows, kept on the article row so a page of
-- articles is one indexed read: the favourite count (changed in the same
-- transaction as `favorites`) and the sorted tag names joined by U+001F
-- (tags are set at creation; `article_tags` stays the source for filters).
ALTER TABLE articles ADD COLUMN favorites_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE articles ADD COLUMN tag_list VARCHAR(450) NOT NULL DEFAULT '';

UPDATE articles SET favorites_count = (SELECT COUNT(*) FROM favorites f WHERE f.article_id = articles.id);
UPDATE articles SET tag_list = COALESCE((
    SELECT group_concat(name, char(31)) FROM (
        SELECT t.name AS name FROM article_tags at JOIN tags t ON t.id = at.tag_id
        WHERE at.article_id = articles.id ORDER BY t.name
    )
), '');

-- Listings are newest first by id (ids grow with creation), per author too.
DROP INDEX article_created_idx;
DROP INDEX article_author_idx;
CREATE INDEX article_author_recent_idx ON articles (author_id, id);
