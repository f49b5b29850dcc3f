import { ApiError } from "./errors";

/**
 * Rows one answer may hold (~130 bytes of JSON each without group-by values: ~13 MB): past it the query is refused rather than built in
 * a Worker's 128 MB. Each subject's object sends at most one row more than this.
 */
export const MAX_ANSWER_ROWS = 100_000;

export function answerTooLarge(): never {
  throw new ApiError(
    "bad_request",
    `the answer would have more than ${MAX_ANSWER_ROWS.toLocaleString("en")} rows: narrow it with from/to, a larger windowSize, fewer groupBy keys or fewer subjects`,
  );
}
