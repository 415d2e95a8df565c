/**
 * Latency statistics for the benchmarks: nearest-rank percentiles over recorded samples.
 * Samples are kept whole (a 20 s run records well under a million numbers), so the figures are
 * exact rather than histogram estimates.
 */

/** A summary of one latency distribution, in milliseconds. */
export type LatencySummary = {
  count: number;
  min: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
};

/**
 * The nearest-rank percentile `p` (0–100) of ascending `sorted`: the smallest value such that at
 * least p% of the samples are at or below it. NaN for no samples.
 */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile out of range: ${p}`);
  const n = sorted.length;
  if (n === 0) return NaN;
  if (p === 0) return sorted[0]!;
  const rank = Math.ceil((p / 100) * n);
  return sorted[Math.min(n, Math.max(1, rank)) - 1]!;
}

/** Summarise unsorted samples (milliseconds); every field is NaN when there are none. */
export function summarise(samples: ArrayLike<number>): LatencySummary {
  const sorted = Float64Array.from(samples).sort();
  let sum = 0;
  for (let i = 0; i < sorted.length; i++) sum += sorted[i]!;
  return {
    count: sorted.length,
    min: sorted.length ? sorted[0]! : NaN,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    max: sorted.length ? sorted[sorted.length - 1]! : NaN,
    mean: sorted.length ? sum / sorted.length : NaN,
  };
}

/** Round to `digits` decimals for printing and JSON (NaN stays NaN, shown as "n/a"). */
export function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** "12.3 ms", or "n/a" when there was nothing to measure. */
export function ms(x: number): string {
  return Number.isFinite(x) ? `${round(x, 1)} ms` : 'n/a';
}

/** The sum of some numbers (0 for none). */
export function sumOf(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}
