// RealWorld ("Conduit") endpoints under /api.
import { http } from './http'
import type {
  Article,
  ArticleDraft,
  ArticleList,
  ArticleListQuery,
  Comment,
  CommentPage,
  LoginCredentials,
  Profile,
  Registration,
  SentimentLabel,
  User,
  UserUpdate,
} from './types'

const seg = encodeURIComponent

export const usersApi = {
  login: async (user: LoginCredentials) => (await http.post<{ user: User }>('/api/users/login', { user })).user,
  register: async (user: Registration) => (await http.post<{ user: User }>('/api/users', { user })).user,
  current: async () => (await http.get<{ user: User }>('/api/user')).user,
  update: async (user: UserUpdate) => (await http.put<{ user: User }>('/api/user', { user })).user,
  logout: () => http.post<void>('/api/users/logout'),
}

export const profilesApi = {
  get: async (username: string) => (await http.get<{ profile: Profile }>(`/api/profiles/${seg(username)}`)).profile,
  follow: async (username: string) =>
    (await http.post<{ profile: Profile }>(`/api/profiles/${seg(username)}/follow`)).profile,
  unfollow: async (username: string) =>
    (await http.delete<{ profile: Profile }>(`/api/profiles/${seg(username)}/follow`)).profile,
}

export const articlesApi = {
  list: (query: ArticleListQuery = {}) => http.get<ArticleList>('/api/articles', { ...query }),
  feed: (query: Pick<ArticleListQuery, 'limit' | 'offset'> = {}) =>
    http.get<ArticleList>('/api/articles/feed', { ...query }),
  get: async (slug: string) => (await http.get<{ article: Article }>(`/api/articles/${seg(slug)}`)).article,
  create: async (article: ArticleDraft) => (await http.post<{ article: Article }>('/api/articles', { article })).article,
  update: async (slug: string, article: Partial<ArticleDraft>) =>
    (await http.put<{ article: Article }>(`/api/articles/${seg(slug)}`, { article })).article,
  remove: (slug: string) => http.delete(`/api/articles/${seg(slug)}`),
  favorite: async (slug: string) =>
    (await http.post<{ article: Article }>(`/api/articles/${seg(slug)}/favorite`)).article,
  unfavorite: async (slug: string) =>
    (await http.delete<{ article: Article }>(`/api/articles/${seg(slug)}/favorite`)).article,
}

export const commentsApi = {
  /** A page of the article's comments, oldest first; `commentsCount` is all of them (absent on servers that do not page). */
  page: (slug: string, query: { limit?: number; offset?: number } = {}) =>
    http.get<CommentPage>(`/api/articles/${seg(slug)}/comments`, { ...query }),
  create: async (slug: string, body: string) =>
    (await http.post<{ comment: Comment }>(`/api/articles/${seg(slug)}/comments`, { comment: { body } })).comment,
  remove: (slug: string, id: number) => http.delete(`/api/articles/${seg(slug)}/comments/${id}`),
  correct: async (slug: string, id: number, label: SentimentLabel) =>
    (await http.put<{ comment: Comment }>(`/api/articles/${seg(slug)}/comments/${id}/sentiment`, { label })).comment,
}

export const tagsApi = {
  list: async () => (await http.get<{ tags: string[] }>('/api/tags')).tags,
}
