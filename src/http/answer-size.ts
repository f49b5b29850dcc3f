import { ApiError } from "./errors";

/**
 * Rows one answer may hold (~130 bytes of JSON each without group-by values: ~13 MB): past it the query is refused rather than built in
 * a Worker's 128 MB.
 */
export const MAX_ANSWER_ROWS = 100_000;

/** Subjects' objects asked at once by a query of several subjects. */
export const ANSWER_FANOUT = 8;

export function answerTooLarge(): never {
  throw new ApiError(
    "bad_request",
    `the answer would have more than ${MAX_ANSWER_ROWS.toLocaleString("en")} rows: narrow it with from/to, a larger windowSize, fewer groupBy keys or fewer subjects`,
  );
}

/**
 * Each key's rows (in the order of `keys`), MAX_ANSWER_ROWS in all, else answerTooLarge. `ask(key, maxRows)`
 * sends at most maxRows + 1 rows, the one more saying "and more". Asking each of 100 subjects for up to
 * the whole cap at once could bring 100 × 100,000 rows into the Worker before their sum was checked, so
 * ANSWER_FANOUT keys are asked at a time, each for an equal share of the cap: what is held never passes
 * about twice the cap. A key with more than its share is asked again alone, for what is left of the cap.
 */
export async function gatherWithinCap<K, R>(keys: readonly K[], ask: (key: K, maxRows: number) => Promise<readonly R[]>, cap = MAX_ANSWER_ROWS): Promise<(readonly R[])[]> {
  const answers: (readonly R[])[] = new Array(keys.length).fill([]);
  const lanes = Math.min(ANSWER_FANOUT, keys.length);
  const share = Math.floor(cap / Math.max(lanes, 1));
  let total = 0;
  let refused = false;
  const larger: number[] = [];
  const keep = (i: number, rows: readonly R[], asked: number): boolean => {
    if (rows.length > cap - total) {
      refused = true;
      answerTooLarge();
    }
    if (rows.length > asked) return false;
    answers[i] = rows;
    total += rows.length;
    return true;
  };
  let next = 0;
  const lane = async () => {
    while (next < keys.length && !refused) {
      const i = next++;
      if (!keep(i, await ask(keys[i]!, share), share)) larger.push(i);
    }
  };
  await Promise.all(Array.from({ length: lanes }, lane));
  for (const i of larger.sort((a, b) => a - b)) keep(i, await ask(keys[i]!, cap - total), cap - total);
  return answers;
}
