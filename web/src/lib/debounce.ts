export interface Debounced<A extends unknown[]> {
  (...args: A): void
  cancel(): void
  flush(): void
}

/** Calls `fn` once `waitMs` have passed without another call; `flush` runs a pending call now. */
export function debounce<A extends unknown[]>(fn: (...args: A) => void, waitMs: number): Debounced<A> {
  let timer: ReturnType<typeof setTimeout> | null = null
  let lastArgs: A | null = null

  const debounced = ((...args: A) => {
    lastArgs = args
    if (timer !== null) clearTimeout(timer)
    timer = setTimeout(() => {
      timer = null
      const pending = lastArgs
      lastArgs = null
      if (pending) fn(...pending)
    }, waitMs)
  }) as Debounced<A>

  debounced.cancel = () => {
    if (timer !== null) clearTimeout(timer)
    timer = null
    lastArgs = null
  }
  debounced.flush = () => {
    const pending = lastArgs
    debounced.cancel()
    if (pending) fn(...pending)
  }
  return debounced
}
