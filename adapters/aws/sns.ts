import { PublishCommand, type SNSClient } from '@aws-sdk/client-sns';
import type { EscalationMessage, NotifierPort, Published } from '../../shared/gate/ports.js';
import { DEFAULT_RETRY, type RetryOptions, withRetriesMayLand } from './retry.js';

/** SNS: "Subjects must be UTF-8 text with no line breaks or control characters, and less than 100 characters". */
export const SNS_SUBJECT_MAX = 99;
/** SNS: the message body and its attributes together, 256 KiB on a topic with the default maximum. */
export const SNS_MESSAGE_MAX_BYTES = 262_144;

/** A message attribute, so that subscription filter policies can pick Tollgate's messages (docs/escalation.md). */
export const FORMAT_ATTRIBUTE = 'tollgate-format';
export const FORMAT_VERSION = 'v1';

const FALLBACK_SUBJECT = 'Tollgate escalation';

// C0 and C1 controls (line breaks included) and the Unicode line and paragraph separators.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g;

/** A subject SNS accepts: one line, no control characters, at most 99 characters. */
export function snsSubject(subject: string): string {
  let s = subject.replace(CONTROL, ' ').replace(/\s+/g, ' ').trim();
  if (s === '') return FALLBACK_SUBJECT;
  if (s.length > SNS_SUBJECT_MAX) {
    // ASCII dots: older SNS documentation asks for ASCII subjects, and "..." is safe either way.
    let cut = SNS_SUBJECT_MAX - 3;
    const last = s.charCodeAt(cut - 1);
    if (last >= 0xd800 && last <= 0xdbff) cut--;
    s = `${s.slice(0, cut).trimEnd()}...`;
  }
  return s;
}

/**
 * The `MessageStructure: json` body: machine subscribers (SQS, Lambda, HTTP(S), the chat integrations behind
 * them) get the JSON as a string; `default`, required by SNS, serves every other protocol, email among them,
 * with the text. (An `email` key would be a second copy of the text, and every copy counts against the
 * message's size limit.)
 */
export function snsMessageBody(text: string, json: unknown): string {
  const structured = JSON.stringify(json) ?? 'null';
  return JSON.stringify({
    default: text,
    sqs: structured,
    lambda: structured,
    https: structured,
    http: structured,
  });
}

function bytes(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The JSON lists that can be shortened, how the text names what they hold, and the count beside each list
 * that already says how many entries it lacks (the escalation's `more`, `moreVulnerabilityIds` and
 * `moreExpiringSoon`). What a
 * cut leaves out is added to that count rather than to a field of its own, so the JSON has the same shape
 * whether or not it was shortened.
 */
const SHRINKABLE: Readonly<Record<string, { readonly name: string; readonly counter: string }>> = {
  findings: { name: 'findings', counter: 'more' },
  vulnerabilityIds: { name: 'vulnerability ids', counter: 'moreVulnerabilityIds' },
  expiringSoon: { name: 'expiring exceptions', counter: 'moreExpiringSoon' },
};

interface Shrunk {
  readonly json: unknown;
  /**
   * Per list key: entries the lists lack in all (cut here, or counted as missing already), entries there
   * are in all, and entries cut here.
   */
  readonly omitted: Map<string, { left: number; of: number; cut: number }>;
}

/** The longest shrinkable list anywhere in the JSON. */
function longestList(value: unknown): number {
  if (Array.isArray(value)) return value.reduce((m: number, v) => Math.max(m, longestList(v)), 0);
  if (!isObj(value)) return 0;
  let max = 0;
  for (const [key, v] of Object.entries(value)) {
    if (key in SHRINKABLE && Array.isArray(v)) max = Math.max(max, v.length);
    max = Math.max(max, longestList(v));
  }
  return max;
}

/** A copy of the JSON with every shrinkable list cut to `keep` entries, its count beside raised by the cut. */
function shrink(json: unknown, keep: number): Shrunk {
  const omitted = new Map<string, { left: number; of: number; cut: number }>();
  const walk = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(walk);
    if (!isObj(value)) return value;
    const out: Obj = {};
    const cuts: [string, number][] = [];
    for (const [key, v] of Object.entries(value)) {
      const list = SHRINKABLE[key];
      if (list !== undefined && Array.isArray(v)) {
        const before = value[list.counter];
        const missing = typeof before === 'number' ? before : 0;
        const cut = Math.max(0, v.length - keep);
        const count = omitted.get(key) ?? { left: 0, of: 0, cut: 0 };
        count.of += v.length + missing;
        count.left += cut + missing;
        count.cut += cut;
        omitted.set(key, count);
        out[key] = v.slice(0, keep).map(walk);
        if (cut > 0) cuts.push([list.counter, missing + cut]);
      } else out[key] = walk(v);
    }
    // After the loop: the count may come before or after its list, and keeps its place either way.
    for (const [counter, total] of cuts) out[counter] = total;
    return out;
  };
  return { json: walk(json), omitted };
}

/**
 * Goes into the text, which email subscribers read without ever receiving the JSON, hence it says whose
 * JSON. Totals include entries the lists lacked before the cut, so that they match the JSON's counts.
 */
function shrinkNote(omitted: Shrunk['omitted']): string {
  const parts: string[] = [];
  for (const [key, { left, of, cut }] of omitted) {
    if (cut > 0) parts.push(`${left} of ${of} ${SHRINKABLE[key]?.name ?? key}`);
  }
  return `\n\n[To keep this message within the SNS size limit of 256 KB, the JSON sent to SQS, Lambda and HTTP(S) subscribers was shortened: in all it leaves out ${parts.join(' and ')}.]`;
}

/**
 * The message body, within `budget` bytes. An escalation that does not fit is still sent: a message that
 * fails to send helps nobody. First the JSON's `findings` (and `vulnerabilityIds`) lists are shortened, as
 * little as needed, their `more` (and `moreVulnerabilityIds`) counting what was cut, and the text says what
 * was left out; if that is not enough, the text is cut too, beside the JSON with its lists emptied as long as
 * that leaves the text a quarter of the budget, and beside the JSON's essentials otherwise.
 */
export function fitMessage(message: EscalationMessage, budget: number): string {
  const full = snsMessageBody(message.text, message.json);
  if (bytes(full) <= budget) return full;

  // The most entries per list that fits: the size grows with it, so a binary search.
  let lo = 0;
  let hi = longestList(message.json) - 1;
  let best: string | undefined;
  while (lo <= hi) {
    const keep = (lo + hi) >> 1;
    const shrunk = shrink(message.json, keep);
    const body = snsMessageBody(`${message.text}${shrinkNote(shrunk.omitted)}`, shrunk.json);
    if (bytes(body) <= budget) {
      best = body;
      lo = keep + 1;
    } else hi = keep - 1;
  }
  if (best !== undefined) return best;

  // Even empty lists leave it too large: the text is what is left to cut, and then the JSON. The text is cut in
  // its middle: its end holds the links and the line that says where to approve or reject, which a reader
  // needs whatever the findings above them.
  const bare = shrink(message.json, 0);
  const tailAt = message.text.lastIndexOf(TEXT_TAIL);
  const tail = tailAt >= 0 && message.text.length - tailAt <= TAIL_MAX ? message.text.slice(tailAt) : '';
  const head = message.text.slice(0, message.text.length - tail.length);
  // The JSON goes out in four copies and the text in one, so a JSON a fifth of the budget would leave email
  // subscribers, who read only the text, the verdict and the links without a single violation. The emptied
  // lists are kept only if the text keeps this much; else the JSON is cut to its essentials, for the text.
  const textMin = Math.min(Math.floor(budget * TEXT_MIN_SHARE), bytes(message.text));
  const cut = (json: unknown, note: string, minText = 0): string | undefined => {
    // The whole text, if it fits beside this JSON: its note then says what was reduced, not that it was cut.
    const whole = snsMessageBody(`${message.text}${JSON_NOTE}`, json);
    if (bytes(whole) <= budget) return whole;
    // Not even the least text the JSON may leave fits beside it: no need to search.
    if (bytes(snsMessageBody('x'.repeat(minText), json)) > budget) return undefined;
    let low = 0;
    let high = head.length;
    let found: { body: string; text: string } | undefined;
    while (low <= high) {
      const mid = (low + high) >> 1;
      const text = `${head.slice(0, mid)}${note}${tail}`;
      const body = snsMessageBody(text, json);
      if (bytes(body) <= budget) {
        found = { body, text };
        low = mid + 1;
      } else high = mid - 1;
    }
    return found !== undefined && bytes(found.text) >= minText ? found.body : undefined;
  };
  const cutNote =
    '\n\n[Cut to keep this message within the SNS size limit of 256 KB; see the decision record.]\n';
  const reason = 'larger than the SNS size limit of 256 KB; see the decision record';
  // Which release waits, and where to answer it, survive every cut: what a chat bot routes and dedupes on.
  const essentials = isObj(message.json)
    ? Object.fromEntries(
        ESSENTIAL_KEYS.filter((k) => k in (message.json as Obj)).map((k) => [k, (message.json as Obj)[k]]),
      )
    : {};
  return (
    cut(bare.json, cutNote, textMin) ??
    cut({ ...essentials, truncated: true, reason }, cutNote) ??
    cut({ truncated: true, reason }, cutNote) ??
    snsMessageBody('', null)
  );
}

/** The text's note when the text is whole and only the JSON for machine subscribers was reduced. */
const JSON_NOTE =
  '\n\n[To keep this message within the SNS size limit of 256 KB, the JSON sent to SQS, Lambda and HTTP(S) subscribers was reduced: see the decision record.]';
/** Where the text's links begin (`renderText` in shared/gate/escalation.ts): kept when the text is cut. */
const TEXT_TAIL = '\nLinks\n';
/**
 * The least share of the budget the text keeps beside the JSON with emptied lists (64 KB at SNS's limit); with
 * less, the JSON is cut to its essentials instead. The text need not keep more than it has.
 */
const TEXT_MIN_SHARE = 0.25;
/** The most of the text's end kept as it is (the links and the approval line are well under this). */
const TAIL_MAX = 8_192;
/** The JSON's fields kept when even its emptied lists do not fit: the release, the verdict, the links. */
const ESSENTIAL_KEYS = ['version', 'outcome', 'summary', 'gate', 'links'] as const;

export class SnsNotifier implements NotifierPort {
  constructor(
    private readonly client: SNSClient,
    private readonly topicArn: string,
    private readonly retry: RetryOptions = DEFAULT_RETRY,
    private readonly maxBytes: number = SNS_MESSAGE_MAX_BYTES,
  ) {}

  async publish(message: EscalationMessage): Promise<Published> {
    const subject = snsSubject(message.subject);
    // The limit counts the attributes; the subject is counted too, to keep a margin.
    const overhead = bytes(FORMAT_ATTRIBUTE) + bytes('String') + bytes(FORMAT_VERSION) + bytes(subject);
    const body = fitMessage(message, this.maxBytes - overhead);
    // An attempt that timed out or was cut off may have been delivered, its answer lost, and standard topics
    // take no deduplication id: the gate is told, for its record.
    const { mayHaveLanded } = await withRetriesMayLand(
      () =>
        this.client.send(
          new PublishCommand({
            TopicArn: this.topicArn,
            Subject: subject,
            Message: body,
            MessageStructure: 'json',
            MessageAttributes: {
              [FORMAT_ATTRIBUTE]: { DataType: 'String', StringValue: FORMAT_VERSION },
            },
          }),
        ),
      this.retry,
    );
    return { mayHaveDuplicated: mayHaveLanded };
  }
}
