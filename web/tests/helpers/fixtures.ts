import type {
  Article,
  Comment,
  CommentSentiment,
  FeedbackSample,
  FeedbackStats,
  Profile,
  Training,
  TrainingSummary,
  User,
} from '@/api'

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

/** `GET /v1/feedback/stats` as the orchestrator answers it (an LLM labeler, one sample held). */
export function feedbackStats(overrides: Partial<FeedbackStats> = {}): FeedbackStats {
  return {
    total: 6,
    by_source: { llm: 1, pseudo: 2, human: 3 },
    by_label: { positive: 4, negative: 2, neutral: 0 },
    by_status: { accepted: 5, review: 1, rejected: 0 },
    breakdown: [
      { source: 'llm', label: 'positive', status: 'review', count: 1 },
      { source: 'pseudo', label: 'positive', status: 'accepted', count: 2 },
      { source: 'human', label: 'negative', status: 'accepted', count: 2 },
      { source: 'human', label: 'positive', status: 'accepted', count: 1 },
    ],
    used: 3,
    comments: { pending: 4, labeled: 6, duplicate: 1, failed: 0 },
    labeler: { source: 'llm', model: 'qwen2.5-7b-instruct' },
    policy: {
      min_confidence: { llm: 0.7, pseudo: 0.9, human: 0 },
      hold_disagreements: true,
      disagreement_confidence: 0.8,
      max_per_author: 50,
      max_class_ratio: 1.5,
    },
    next_run: { selected: 5, dropped: {} },
    ...overrides,
  }
}

/** A sample held for review: the LLM says positive, a confident model says negative. */
export function feedbackSample(id: number, overrides: Partial<FeedbackSample> = {}): FeedbackSample {
  return {
    id,
    text: `样本 ${id}：房间不大，但是很干净`,
    label: 'positive',
    source: 'llm',
    confidence: 0.86,
    labeler: 'qwen2.5-7b-instruct',
    topics: ['room', 'cleanliness'],
    reason: 'small room but clean',
    model_label: 'negative',
    model_score: 0.12,
    model_version: 'v1',
    status: 'review',
    status_reason: 'disagreement',
    comment_id: 100 + id,
    author_id: 2,
    shard_key: 'user:2',
    created_at: '2026-12-01T10:00:00Z',
    updated_at: '2026-12-01T10:00:00Z',
    used_by_run: null,
    used_at: null,
    ...overrides,
  }
}
