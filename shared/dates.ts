/**
 * ISO-8601 as Tollgate reads it from people and files: a date (`2026-11-25`, read as UTC midnight) or a
 * timestamp with a zone (`2026-11-25T12:00:00Z`, `…+02:00`). A timestamp without a zone would be a guess.
 */
const ISO_TIME =
  /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(?:Z|[+-](\d{2}):?(\d{2})))?$/;

/**
 * Epoch milliseconds of an ISO-8601 date or timestamp with a zone (see ISO_TIME), or NaN. `Date.parse` alone
 * rolls `2026-02-30` over to March 2 and `T24:00` to the next day: a date or time that does not exist is
 * refused, never read as another one.
 */
export function parseIsoTime(value: string): number {
  const m = ISO_TIME.exec(value);
  if (!m) return Number.NaN;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  // setUTCFullYear, not Date.UTC: that reads years 0-99 as 1900-1999, and 0099-01-01 would not exist.
  const day = new Date(0);
  day.setUTCFullYear(y, mo - 1, d);
  if (day.getUTCFullYear() !== y || day.getUTCMonth() !== mo - 1 || day.getUTCDate() !== d) return Number.NaN;
  if (Number(m[4] ?? 0) > 23 || Number(m[5] ?? 0) > 59 || Number(m[6] ?? 0) > 59) return Number.NaN;
  if (Number(m[7] ?? 0) > 23 || Number(m[8] ?? 0) > 59) return Number.NaN;
  return Date.parse(m[4] === undefined ? `${value}T00:00:00Z` : value);
}
