import { ApiError } from "./errors";

/**
 * Rows one answer may hold (~130 bytes of JSON each without group-by values: ~13 MB): past it the query is refused rather than built in
 * a Worker's 128 MB.
 */
export const MAX_ANSWER_ROWS = 100_000;

export function answerTooLarge(): never {
  throw new ApiError(
    "bad_request",
    `the answer would have more than ${MAX_ANSWER_ROWS.toLocaleString("en")} rows: narrow it with from/to, a larger windowSize, fewer groupBy keys or fewer subjects`,
  );
}

/**
 * Each key's rows (in the order of `keys`), MAX_ANSWER_ROWS in all, else answerTooLarge. `ask(key, maxRows)`
 * sends at most maxRows + 1 rows, the one more saying "and more". Asking each of 100 subjects for up to
 * the whole cap could bring 100 × 100,000 rows into the Worker before their sum was checked, so every
 * key is asked at once for an equal share of the cap, and the keys with more than their share are asked
 * again, for equal shares of what is left: what is held never passes the cap by more than a row per key.
 * Each round leaves fewer keys (those left each hold more than a share), so it ends.
 */
export async function gatherWithinCap<K, R>(keys: readonly K[], ask: (key: K, maxRows: number) => Promise<readonly R[]>, cap = MAX_ANSWER_ROWS): Promise<(readonly R[])[]> {
  const answers: (readonly R[])[] = new Array(keys.length).fill([]);
  let budget = cap;
  let left = keys.map((_, i) => i);
  while (left.length > 0) {
    const share = Math.floor(budget / left.length);
    const got = await Promise.all(left.map((i) => ask(keys[i]!, share)));
    const more: number[] = [];
    got.forEach((rows, j) => {
      if (rows.length > share) more.push(left[j]!);
      else {
        answers[left[j]!] = rows;
        budget -= rows.length;
      }
    });
    if (more.length * (share + 1) > budget) answerTooLarge();
    left = more;
  }
  return answers;
}
