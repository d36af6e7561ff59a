// Online inference under /v1/sentiment (public, no token needed).
import { http } from './http'
import type { InferenceStats, ModelInfo, Prediction } from './types'

export const sentimentApi = {
  predict: (text: string, signal?: AbortSignal) => http.post<Prediction>('/v1/sentiment', { text }, signal),
  model: () => http.get<ModelInfo>('/v1/sentiment/model'),
  stats: () => http.get<InferenceStats>('/v1/sentiment/stats'),
}
