/**
 * Splits rows into JSON strings for `json_each(?)`, each below `maxBytes` (production caps a bound
 * string at 2 MB), so a set-based statement never meets the limit however large the set. Shared by
 * the Durable Object's SQLite and D1: both cap a statement at 100 bound parameters, not at its data.
 */
export function* jsonChunks(rows: readonly unknown[], maxBytes = 1_000_000): Generator<string> {
  let parts: string[] = [];
  let size = 2;
  for (const row of rows) {
    const s = JSON.stringify(row);
    if (parts.length > 0 && size + s.length + 1 > maxBytes) {
      yield `[${parts.join(",")}]`;
      parts = [];
      size = 2;
    }
    parts.push(s);
    size += s.length + 1;
  }
  if (parts.length > 0) yield `[${parts.join(",")}]`;
}
