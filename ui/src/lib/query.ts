// Building v0 list queries (polyaxon-v0.md 4.3): `field:value` conditions joined by commas,
// alternatives with `|`, negation with `~`.

export const STATUSES = [
  "created",
  "scheduled",
  "starting",
  "running",
  "succeeded",
  "failed",
  "stopped",
] as const;

/** The text query and the chosen status chips, as one v0 query string. */
export function combineQuery(text: string, statuses: readonly string[]): string {
  const parts = [];
  const trimmed = text.trim();
  if (trimmed) parts.push(trimmed);
  if (statuses.length) parts.push(`status:${statuses.join("|")}`);
  return parts.join(",");
}

/** Next sort for a click on a column: ascending, then descending, then none. */
export function nextSort(current: string, field: string): string {
  if (current === field) return `-${field}`;
  if (current === `-${field}`) return "";
  return field;
}

/** Sort key of a table column: metrics and declarations sort server-side too. */
export function sortField(column: string): string {
  if (column.startsWith("metric.") || column.startsWith("declarations.")) return column;
  return column;
}

/** The keys found in a page of rows for one dict field (`last_metric`, `declarations`). */
export function keysOf(rows: readonly Record<string, unknown>[], field: string): string[] {
  const keys = new Set<string>();
  for (const row of rows) {
    const value = row[field];
    if (value && typeof value === "object") Object.keys(value).forEach((k) => keys.add(k));
  }
  return [...keys].sort();
}
