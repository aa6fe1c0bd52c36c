// How the bench scripts take their rounds: the variants in turn, and the median of what each
// round read.

/**
 * `variants` in the order round `round` runs them: each round starts one later than the one
 * before, for the machine's speed drifts within a round, and a fixed order would hand the same
 * variants the same part of it.
 */
export const inTurn = (variants, round) => variants.map((_, i) => variants[(i + round) % variants.length]);

export const median = (values) => {
  const sorted = [...values].sort((x, y) => x - y);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
