// Wire types of the bloginfer HTTP API. web/API.md is the contract these mirror.

// ---- Blog (RealWorld, under /api) ----

export interface User {
  email: string
  token: string
  username: string
  bio: string | null
  image: string | null
  /** Our extension to RealWorld: admins may train, promote and correct any comment. */
  admin: boolean
}

export interface Profile {
  username: string
  bio: string | null
  image: string | null
  following: boolean
}

export interface Article {
  slug: string
  title: string
  description: string
  /** Absent from list responses (`GET /api/articles`, `/feed`). */
  body?: string
  tagList: string[]
  createdAt: string
  updatedAt: string
  favorited: boolean
  favoritesCount: number
  author: Profile
}

export type SentimentLabel = 'positive' | 'negative'
export type SentimentSource = 'model' | 'human' | 'pseudo'

export interface CommentSentiment {
  label: SentimentLabel
  /** Probability of the positive class, 0..1. */
  score: number
  modelVersion: string | null
  source: SentimentSource
}

export interface Comment {
  id: number
  createdAt: string
  updatedAt: string
  body: string
  author: Profile
  /** null while the backend has not classified the comment yet. */
  sentiment: CommentSentiment | null
}

/** `GET /api/articles/:slug/comments`: a page, oldest first, and how many there are. */
export interface CommentPage {
  comments: Comment[]
  /** All of the article's comments; absent on a RealWorld server that does not page. */
  commentsCount?: number
}

export interface ArticleDraft {
  title: string
  description: string
  body: string
  tagList: string[]
}

export interface LoginCredentials {
  email: string
  password: string
}

export interface Registration extends LoginCredentials {
  username: string
}

export interface UserUpdate {
  email?: string
  username?: string
  password?: string
  /** Required by the server when `email` or `password` changes. */
  currentPassword?: string
  bio?: string | null
  image?: string | null
}

export interface ArticleListQuery {
  tag?: string
  author?: string
  favorited?: string
  limit?: number
  offset?: number
}

export interface ArticleList {
  articles: Article[]
  articlesCount: number
}

// ---- Inference (/v1/sentiment) ----

export interface Prediction {
  label: SentimentLabel
  score: number
  probabilities: { negative: number; positive: number }
  model_version: string
}

export interface ClassMetrics {
  label: string
  precision: number
  recall: number
  f1: number
  support: number
}

export interface ModelMetrics {
  accuracy: number
  macro_f1: number
  per_class: ClassMetrics[]
  /** Rows: actual class, columns: predicted class, order negative, positive. */
  confusion: number[][]
  total: number
  loss?: number
}

export interface ModelInfo {
  version: string
  config: Record<string, unknown>
  metrics: ModelMetrics
  loaded_at: string
}

export interface InferenceStats {
  requests_total: number
  requests_per_second: number
  latency_ms: { p50: number; p95: number; p99: number }
  model_version: string | null
}

// ---- Orchestrator (/v1, admin only) ----

export type TrainingStatus = 'pending' | 'running' | 'succeeded' | 'failed' | 'cancelled'

export interface TrainingRequest {
  workers?: number
  rounds?: number
  strategy?: string
}

export interface TrainingSummary {
  id: string
  status: TrainingStatus
  phase: string
  created_at: string
  started_at: string | null
  finished_at: string | null
  strategy: string
  workers: number
  rounds: number
  rounds_done: number
  candidate_version: string | null
  /** The candidate's accuracy on the evaluation split, once evaluated. */
  candidate_accuracy?: number | null
  /** The last finished round's metrics (privacy spent, secure aggregation); the detail has all. */
  last_round?: RoundMetrics | null
  promoted: boolean
  error: string | null
}

/** One round of a run; round 0 is the initial model (no training loss yet),
 * and the validation fields are null when the aggregator has no validation split. */
export interface RoundMetrics {
  round: number
  clients: number
  train_loss: number | null
  val_loss: number | null
  val_accuracy: number | null
  val_macro_f1: number | null
  seconds: number
  /** The aggregator saw only the sum of the round's updates (secure aggregation); false for round 0. */
  secure?: boolean
  /** Differential privacy spent up to and including this round; only under DP, never for round 0.
   * null stands for an infinite ε (JSON has no infinity). */
  epsilon?: number | null
  /** The δ of `epsilon`, sent with it. */
  delta?: number | null
}

export interface WorkerSamples {
  worker_id: string
  samples: number
}

export interface Training extends TrainingSummary {
  round_metrics: RoundMetrics[]
  worker_samples: WorkerSamples[]
}

export interface TrainingList {
  trainings: TrainingSummary[]
  active_id: string | null
  cooldown_seconds: number
}

export type TrainingMethod = 'central' | 'federated'

export interface ModelVersion {
  version: string
  created_at: string
  method: TrainingMethod
  accuracy: number
  macro_f1: number
  current: boolean
}

export interface ModelVersionList {
  current: string | null
  versions: ModelVersion[]
}

// ---- Feedback loop (/v1/feedback, admin only) ----

/** Who labelled a training sample: an LLM, the model's own confident prediction, or a person. */
export type FeedbackSource = 'llm' | 'pseudo' | 'human'
/** The labeler may say neutral; the model (and the training set) has only two classes. */
export type FeedbackLabel = SentimentLabel | 'neutral'
/** `review`: held for an admin, e.g. an LLM label that contradicts a confident model. */
export type SampleStatus = 'accepted' | 'review' | 'rejected'

export interface FeedbackBreakdownRow {
  source: FeedbackSource
  label: FeedbackLabel
  status: SampleStatus
  count: number
}

export interface FeedbackPolicy {
  min_confidence: Record<FeedbackSource, number>
  hold_disagreements: boolean
  disagreement_confidence: number
  max_per_author: number
  /** 0 turns class balancing off. */
  max_class_ratio: number
}

export interface FeedbackStats {
  total: number
  by_source: Record<FeedbackSource, number>
  by_label: Record<FeedbackLabel, number>
  by_status: Record<SampleStatus, number>
  breakdown: FeedbackBreakdownRow[]
  /** Samples some training run has trained on. */
  used: number
  /** Comments by labelling state: waiting for the labeler, labelled, a duplicate text, given up on. */
  comments: { pending: number; labeled: number; duplicate: number; failed: number }
  /** The active labeler: an LLM (`model` is its name) or the model's own predictions. */
  labeler: { source: 'llm' | 'pseudo'; model: string | null }
  policy: FeedbackPolicy
  /** What the next training run would take: selected samples and, by reason, the dropped ones. */
  next_run: { selected: number; dropped: Record<string, number> }
}

export interface FeedbackSample {
  id: number
  /** Masked text (emails, phones, URLs, ID numbers replaced). */
  text: string
  label: FeedbackLabel
  source: FeedbackSource
  confidence: number
  /** LLM model name, `model:<version>`, `human` or `review:<admin>`. */
  labeler: string
  topics: string[]
  reason: string | null
  /** The model's own label, P(positive) and version when the sample was labelled. */
  model_label: string | null
  model_score: number | null
  model_version: string | null
  status: SampleStatus
  status_reason: string | null
  comment_id: number | null
  author_id: number | null
  shard_key: string
  created_at: string
  updated_at: string
  used_by_run: string | null
  used_at: string | null
}

export interface FeedbackSampleQuery {
  status?: SampleStatus
  /** 1..500, server default 50. */
  limit?: number
  offset?: number
}

export interface FeedbackSampleList {
  samples: FeedbackSample[]
  total: number
  limit: number
  offset: number
}

/** An admin's decision on a sample; a `label` makes it a human label. */
export interface ReviewDecision {
  status: 'accepted' | 'rejected'
  label?: SentimentLabel
}

export const TERMINAL_STATUSES: readonly TrainingStatus[] = ['succeeded', 'failed', 'cancelled']

export function isTerminal(status: TrainingStatus): boolean {
  return TERMINAL_STATUSES.includes(status)
}
