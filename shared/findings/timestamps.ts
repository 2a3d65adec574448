import { parseIsoTime } from '../dates.js';
import type { Problem } from './problem.js';

/**
 * 9999-12-31T23:59:59Z. Past it, a number is not epoch seconds: most likely epoch milliseconds, which read
 * as seconds would date a finding tens of thousands of years ahead, and `olderThanDays` would never match.
 */
export const MAX_EPOCH_SECONDS = 253_402_300_799;

const MONTHS: Readonly<Record<string, number>> = {
  Jan: 0,
  Feb: 1,
  Mar: 2,
  Apr: 3,
  May: 4,
  Jun: 5,
  Jul: 6,
  Aug: 7,
  Sep: 8,
  Oct: 9,
  Nov: 10,
  Dec: 11,
};

// `Wed Sep 04 16:55:38.411 UTC 2024`: Inspector2 Finding events (Java's Date.toString with milliseconds).
const JAVA_DATE =
  /^(?:[A-Z][a-z]{2} )?([A-Z][a-z]{2}) (\d{1,2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,3}))? UTC (\d{4})$/;
// `Dec 3, 2021, 6:02:30 PM`: older Inspector2 Finding events (always UTC, no zone written). Java 20 and
// later print a narrow no-break space (U+202F) before the AM/PM marker (CLDR 42): the same date.
const US_DATE = /^([A-Z][a-z]{2}) (\d{1,2}), (\d{4}),? (\d{1,2}):(\d{2}):(\d{2})[ \u202f]([AP]M)$/;
// ISO-8601 with a zone, as the AWS CLI and JSON.stringify print; a zone-less one would be a guess.
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})$/;

/**
 * A scanner timestamp in epoch milliseconds: epoch seconds (the ListFindings API), a Date (the AWS SDK's
 * output), ISO-8601 (the AWS CLI, SDK output through JSON.stringify) or either textual form of Inspector2
 * Finding events. Anything else is a problem, never a silently wrong date: `olderThanDays` decides on it.
 */
export function parseTimestamp(value: unknown): number | Problem | undefined {
  if (value === undefined || value === null) return undefined;
  if (value instanceof Date) {
    // The SDK turns any number into a Date: epoch milliseconds sent as seconds arrive as a Date tens of
    // thousands of years ahead, held to the same bounds as the number.
    const ms = value.getTime();
    return ms >= 0 && ms <= MAX_EPOCH_SECONDS * 1000 ? ms : invalid(value);
  }
  if (typeof value === 'number') {
    return Number.isFinite(value) && value >= 0 && value <= MAX_EPOCH_SECONDS
      ? Math.round(value * 1000)
      : invalid(value);
  }
  if (typeof value !== 'string') return invalid(value);
  if (ISO.test(value)) {
    const ms = parseIsoTime(value);
    return Number.isNaN(ms) ? invalid(value) : ms;
  }
  let m = JAVA_DATE.exec(value);
  if (m) {
    const month = MONTHS[m[1]!];
    if (month === undefined) return invalid(value);
    const ms = m[6] === undefined ? 0 : Number(m[6].padEnd(3, '0'));
    return utc(value, Number(m[7]), month, Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5]), ms);
  }
  m = US_DATE.exec(value);
  if (m) {
    const month = MONTHS[m[1]!];
    if (month === undefined) return invalid(value);
    let hour = Number(m[4]);
    if (hour < 1 || hour > 12) return invalid(value);
    if (hour === 12) hour = 0;
    if (m[7] === 'PM') hour += 12;
    return utc(value, Number(m[3]), month, Number(m[2]), hour, Number(m[5]), Number(m[6]), 0);
  }
  return invalid(value);
}

/** Date.UTC rolls `Feb 31` over into March and 25:00 into the next day: only a time that exists is read. */
function utc(
  value: string,
  year: number,
  month: number,
  day: number,
  hour: number,
  minute: number,
  second: number,
  ms: number,
): number | Problem {
  if (hour > 23 || minute > 59 || second > 59) return invalid(value);
  const t = Date.UTC(year, month, day, hour, minute, second, ms);
  return new Date(t).getUTCDate() === day ? t : invalid(value);
}

function invalid(value: unknown): Problem {
  return {
    problem: true,
    expected:
      'a timestamp: epoch seconds (not milliseconds), a real date in ISO-8601 with a zone, "Wed Sep 04 16:55:38.411 UTC 2024" or "Dec 3, 2021, 6:02:30 PM"',
    value,
  };
}
