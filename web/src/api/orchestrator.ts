// Training orchestrator, model registry and feedback under /v1 (admin token required).
import { http } from './http'
import type {
  FeedbackSample,
  FeedbackSampleList,
  FeedbackSampleQuery,
  FeedbackStats,
  ModelVersionList,
  ReviewDecision,
  Training,
  TrainingList,
  TrainingRequest,
} from './types'

const seg = encodeURIComponent

export const trainingsApi = {
  start: (options: TrainingRequest = {}) => http.post<{ id: string }>('/v1/trainings', options),
  list: () => http.get<TrainingList>('/v1/trainings'),
  get: (id: string) => http.get<Training>(`/v1/trainings/${seg(id)}`),
  cancel: (id: string) => http.post<unknown>(`/v1/trainings/${seg(id)}/cancel`),
}

export const modelsApi = {
  list: () => http.get<ModelVersionList>('/v1/models'),
  promote: (version: string) => http.post<{ current: string }>(`/v1/models/${seg(version)}/promote`),
}

export const feedbackApi = {
  stats: () => http.get<FeedbackStats>('/v1/feedback/stats'),
  /** Newest first; `status` filters (e.g. `review`, the samples held for an admin). */
  samples: (params: FeedbackSampleQuery = {}) => http.get<FeedbackSampleList>('/v1/feedback/samples', { ...params }),
  /** Accept (optionally with another label, which makes it a human label) or reject a sample. */
  review: async (id: number, decision: ReviewDecision) =>
    (await http.put<{ sample: FeedbackSample }>(`/v1/feedback/samples/${seg(String(id))}`, decision)).sample,
}
