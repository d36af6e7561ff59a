import type { LocationQueryValue } from 'vue-router'

/** `?page=N` from the URL, 1 when missing or invalid. */
export function pageFromQuery(value: LocationQueryValue | LocationQueryValue[] | undefined): number {
  const raw = Array.isArray(value) ? value[0] : value
  const n = Number(raw)
  return Number.isInteger(n) && n >= 1 ? n : 1
}

export function withPage(path: string, page: number): string {
  return page <= 1 ? path : `${path}?page=${page}`
}
