/**
 * Text a person or an AWS API reads, made safe to cut and to send.
 */

// A high surrogate with no low one after it, or a low one with no high one before it.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * `text` with each lone surrogate replaced by U+FFFD (what `String.prototype.toWellFormed` does): half a
 * character, echoed from CustomData or an error, cannot be encoded as UTF-8, and an API that takes UTF-8
 * (CodePipeline's approval summary, DynamoDB) may refuse the whole request on every retry.
 */
export function wellFormed(text: string): string {
  return text.replace(LONE_SURROGATE, '\uFFFD');
}

/** Clips to `max` UTF-16 units, ending in an ellipsis, without leaving half a surrogate pair. */
export function clipUnits(text: string, max: number): string {
  if (text.length <= max) return text;
  let end = max - 1;
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return `${text.slice(0, end)}…`;
}

/**
 * A value as a message shows it, on one line: JSON, cut short (`nothing` when absent). Config errors, bad
 * archive lines and damaged records all say what came this way.
 */
export function shown(value: unknown): string {
  if (value === undefined) return 'nothing';
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    // A BigInt, or a value that holds itself.
    text = String(value);
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
