// Differential privacy and secure aggregation of a federated run, read from its round metrics.
import type { RoundMetrics } from '@/api'

export interface DpSpent {
  /** ε spent so far; Infinity when the server sent null (JSON has no infinity). */
  epsilon: number
  delta: number | null
  /** The round ε is accounted up to (rounds 1..N). */
  rounds: number
}

/** The privacy spent by the last round metric that carries ε; null when no round does (no DP). */
export function dpSpent(metrics: readonly RoundMetrics[] | undefined): DpSpent | null {
  let last: RoundMetrics | null = null
  for (const m of metrics ?? []) {
    if (m.epsilon !== undefined && (last === null || m.round > last.round)) last = m
  }
  if (last === null) return null
  const { epsilon, delta } = last
  return {
    epsilon: typeof epsilon === 'number' && Number.isFinite(epsilon) ? epsilon : Infinity,
    delta: typeof delta === 'number' ? delta : null,
    rounds: last.round,
  }
}

/** Whether the last finished round (round > 0) was securely aggregated; null before round 1. */
export function securelyAggregated(metrics: readonly RoundMetrics[] | undefined): boolean | null {
  let last: RoundMetrics | null = null
  for (const m of metrics ?? []) if (last === null || m.round > last.round) last = m
  if (last === null || last.round === 0) return null
  return last.secure === true
}

/** 3.2149 -> "3.21", Infinity -> "∞". */
export function formatEpsilon(epsilon: number): string {
  return Number.isFinite(epsilon) ? epsilon.toFixed(2) : '∞'
}

/** 0.00001 -> "1e-5", 0.0000025 -> "2.5e-6"; "?" when unknown. */
export function formatDelta(delta: number | null): string {
  if (delta === null || !Number.isFinite(delta)) return '?'
  if (delta === 0) return '0'
  return Number(delta.toPrecision(3)).toExponential()
}
