// Pure helpers for metric charts and sweeps.

/** Exponential moving average with TensorBoard's debiasing; weight 0 returns the input. */
export function smooth(ys: readonly number[], weight: number): number[] {
  if (weight <= 0) return [...ys];
  const out: number[] = [];
  let last = 0;
  let debias = 0;
  for (const y of ys) {
    last = last * weight + (1 - weight) * y;
    debias = debias * weight + (1 - weight);
    out.push(last / debias);
  }
  return out;
}

/** Best value so far after each point (lower is better when `minimize`). */
export function bestSoFar(values: readonly (number | null)[], minimize: boolean): (number | null)[] {
  let best: number | null = null;
  return values.map((v) => {
    if (v !== null && Number.isFinite(v) && (best === null || (minimize ? v < best : v > best))) best = v;
    return best;
  });
}

/** Merge several series onto one sorted x axis (uPlot's aligned data), null where absent. */
export function align(series: readonly { x: readonly number[]; y: readonly number[] }[]): (number | null)[][] {
  const xs = [...new Set(series.flatMap((s) => s.x))].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const columns = series.map((s) => {
    const col: (number | null)[] = new Array(xs.length).fill(null);
    s.x.forEach((x, i) => (col[index.get(x)!] = s.y[i]));
    return col;
  });
  return [xs, ...columns];
}

/** Declarations whose values differ between the given experiments. */
export function differingKeys(declarations: readonly Record<string, unknown>[]): string[] {
  const keys = new Set(declarations.flatMap((d) => Object.keys(d)));
  return [...keys]
    .filter((k) => new Set(declarations.map((d) => JSON.stringify(d[k] ?? null))).size > 1)
    .sort();
}

/** Whether a point passes every brushed axis range of a parallel-coordinates plot. */
export function inRanges(
  point: Record<string, unknown>,
  ranges: Record<string, [number, number]>,
): boolean {
  return Object.entries(ranges).every(([key, [low, high]]) => {
    const v = point[key];
    return typeof v === "number" && v >= low && v <= high;
  });
}
