import type { Article, Comment, User } from '@/api'

export function isArticleAuthor(user: User | null, article: Article | null): boolean {
  return user !== null && article !== null && user.username === article.author.username
}

/** The article's author and admins may correct a comment's sentiment label. */
export function canCorrectSentiment(user: User | null, article: Article | null): boolean {
  return user !== null && (user.admin || isArticleAuthor(user, article))
}

/** Only the comment's own author may delete it (RealWorld rule). */
export function canDeleteComment(user: User | null, comment: Comment): boolean {
  return user !== null && user.username === comment.author.username
}
