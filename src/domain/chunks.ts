/**
 * Splits rows into JSON strings for `json_each(?)`, each below `maxBytes` in UTF-8 (production caps
 * a bound string at 2 MB, in bytes: counted in characters, a chunk of CJK text was 3 MB), so a
 * set-based statement never meets the limit however large the set. Shared by the Durable Object's
 * SQLite and D1: both cap a statement at 100 bound parameters, not at its data.
 */
export function* jsonChunks(rows: readonly unknown[], maxBytes = 1_000_000): Generator<string> {
  let parts: string[] = [];
  let size = 2;
  for (const row of rows) {
    const s = JSON.stringify(row);
    const bytes = utf8Length(s);
    if (parts.length > 0 && size + bytes + 1 > maxBytes) {
      yield `[${parts.join(",")}]`;
      parts = [];
      size = 2;
    }
    parts.push(s);
    size += bytes + 1;
  }
  if (parts.length > 0) yield `[${parts.join(",")}]`;
}

const NON_ASCII = /[^\x00-\x7f]/;

/** The length of `s` in UTF-8 bytes, without encoding it (a lone surrogate as U+FFFD, 3 bytes, as TextEncoder writes it). */
export function utf8Length(s: string): number {
  if (!NON_ASCII.test(s)) return s.length;
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}
