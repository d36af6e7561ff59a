import type { Article, Comment, CommentSentiment, Profile, Training, TrainingSummary, User } from '@/api'

export function user(overrides: Partial<User> = {}): User {
  return { email: 'li@example.com', token: 'jwt-li', username: 'li', bio: null, image: null, admin: false, ...overrides }
}

export function profile(overrides: Partial<Profile> = {}): Profile {
  return { username: 'li', bio: null, image: null, following: false, ...overrides }
}

export function article(overrides: Partial<Article> = {}): Article {
  return {
    slug: 'hello',
    title: 'Hello',
    description: 'First post',
    body: '# Hello',
    tagList: ['intro'],
    createdAt: '2026-11-01T10:00:00Z',
    updatedAt: '2026-11-01T10:00:00Z',
    favorited: false,
    favoritesCount: 0,
    author: profile(),
    ...overrides,
  }
}

export function sentiment(overrides: Partial<CommentSentiment> = {}): CommentSentiment {
  return { label: 'positive', score: 0.93, modelVersion: 'v1', source: 'model', ...overrides }
}

export function comment(id: number, overrides: Partial<Comment> = {}): Comment {
  return {
    id,
    createdAt: '2026-11-02T10:00:00Z',
    updatedAt: '2026-11-02T10:00:00Z',
    body: `comment ${id}`,
    author: profile({ username: 'wang' }),
    sentiment: sentiment(),
    ...overrides,
  }
}

export function trainingSummary(overrides: Partial<TrainingSummary> = {}): TrainingSummary {
  return {
    id: 'run-1',
    status: 'running',
    phase: 'round 1',
    created_at: '2026-11-03T10:00:00Z',
    started_at: '2026-11-03T10:00:01Z',
    finished_at: null,
    strategy: 'fedavg',
    workers: 3,
    rounds: 5,
    rounds_done: 1,
    candidate_version: null,
    promoted: false,
    error: null,
    ...overrides,
  }
}

export function training(overrides: Partial<Training> = {}): Training {
  return {
    ...trainingSummary(),
    round_metrics: [
      { round: 1, clients: 3, train_loss: 0.61, val_loss: 0.52, val_accuracy: 0.76, val_macro_f1: 0.75, seconds: 12.5 },
    ],
    worker_samples: [
      { worker_id: 'w0', samples: 4700 },
      { worker_id: 'w1', samples: 4800 },
    ],
    ...overrides,
  }
}
