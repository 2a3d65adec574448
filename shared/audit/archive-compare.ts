import { formatPath } from '../errors.js';
import { firstDuplicateKey, jsonSyntaxError } from '../findings/parse.js';
import { shown } from '../text.js';
import { archivedRecordProblem, hashOf } from './chain.js';
import type { AuditRecord } from './record.js';

/*
 * The table's chains against a copy of their records kept elsewhere: the S3 archive (Object Lock, written from
 * the table's stream as records are inserted) or an earlier export. `verifyChain` proves a chain whole against
 * the table's own heads; someone who may write the table can rewrite a chain, re-hash it and move its head,
 * and that still verifies. A copy they cannot alter is the evidence against them: every archived record must
 * still be in the table, unchanged.
 *
 * Pure: the caller reads the copy (lines of JSON, in any order, a record possibly twice) and the table's
 * chains. What is held per archived record is its place, its hashes and where it was read, never the record.
 */

/** Where a copy's record was read: the object (an S3 URI, a file) and the line, from 1. */
export interface ArchiveLocation {
  readonly object: string;
  readonly line: number;
}

export const describeLocation = (at: ArchiveLocation): string => `${at.object}, line ${at.line}`;

/** A line of the copy that is not an audit record: the copy cannot be compared, and the line is named. */
export class ArchiveLineError extends Error {
  constructor(
    readonly at: ArchiveLocation,
    readonly field: string,
    readonly expected: string,
    readonly got: string,
  ) {
    super(`${describeLocation(at)}: ${field}: expected ${expected}, got ${got}`);
    this.name = 'ArchiveLineError';
  }
}

/**
 * - `changed-in-archive`: an archived record whose content does not hash to its `hash`: it was already altered
 *   when the table inserted it (the archive writes what the stream delivers, as it is); or a second copy at a
 *   record's place claiming its hash with other content, named beside the genuine one whichever is read first;
 * - `forked`: the copy holds two different records at one place: the record was deleted and inserted again;
 * - `rewritten`: the table's record at that place is not the archived one;
 * - `deleted`: an archived record the table no longer has;
 * - `not-archived`: a table record the whole archive lacks, between archived ones, or after the chain's last
 *   archived record, or before its first (or in a chain it holds nothing of), when the record's time is past
 *   the archive's grace (`ARCHIVE_GRACE_MS`): written with the stream off, or a record the archive failed on
 *   (its dead-letter queue paged), or a chain's tail rewritten after the archive stopped. Only of a copy
 *   that is the whole archive: a part of it, or a filtered export, lacks records for no such reason. Also,
 *   of any copy, wherever in the chain, a record the copy lacks that is dated later than the comparison's
 *   time and `CLOCK_SKEW_MS`: no time is past the grace yet, so a rewritten tail dated so would otherwise
 *   pass as not archived yet, forever;
 * - `hidden`: an object of the bucket whose latest version is a delete marker (a lifecycle expiration rule, or
 *   a delete once the bucket policy allowed it): its locked versions are still there and were read, but a
 *   listing, Athena and a GET without a version id see nothing;
 * - `overwritten`: an object of the bucket with more than one version: the archive writes each once, so a
 *   later version was written with the bucket policy's create-only rule removed (Athena reads only the latest).
 * The last two are of the object, and name it and its version ids; they are filed under the object's first
 * record.
 */
export type ArchiveProblemKind =
  | 'changed-in-archive'
  | 'forked'
  | 'rewritten'
  | 'deleted'
  | 'not-archived'
  | 'hidden'
  | 'overwritten';

export interface ArchiveProblem {
  readonly pipeline: string;
  readonly seq: number;
  readonly kind: ArchiveProblemKind;
  readonly detail: string;
}

/** A run of seqs, both ends included. */
export interface SeqRange {
  readonly from: number;
  readonly to: number;
}

export interface ArchiveComparison {
  readonly pipeline: string;
  /** Distinct records of the chain in the copy. */
  readonly archived: number;
  /** Table records the copy holds, unchanged. */
  readonly matched: number;
  /** Table records before the copy's first record of the chain: written before the archive existed. */
  readonly beforeArchive: SeqRange | null;
  /** Table records after the copy's last, younger than the grace: not archived yet (it takes about a minute). */
  readonly notYetArchived: SeqRange | null;
  /**
   * Table records between the copy's first and last that it lacks, when the copy is not the whole archive (a
   * filtered export, a part of the bucket): counted, not failed. Of the whole archive, each is a problem.
   */
  readonly missingFromCopy: number;
  /** Every problem, in seq order. */
  readonly problems: readonly ArchiveProblem[];
}

/**
 * How long a record may take to reach the archive before its absence is a problem: the stream delivers in
 * seconds and the function batches for about a minute; an hour also covers its retries in a short outage.
 */
export const ARCHIVE_GRACE_MS = 60 * 60_000;

/**
 * How far past the reader's clock a record's time may be and still be one Tollgate wrote. Tollgate dates a
 * record by its AWS event's time or by its own clock, never later, so only clocks apart explain a later
 * one; 15 minutes is the skew AWS's request signing itself tolerates. A record dated later was written by
 * hand: dated so, a rewritten tail's records are never older than the archive's grace, and `list`'s range,
 * read from the records' times, would run a Query a day to that date.
 */
export const CLOCK_SKEW_MS = 15 * 60_000;

/** Whether `time` (ms) is past `now` and the clock skew allowed: a record dated so was not Tollgate's. */
export const datedInFuture = (time: number, now: number): boolean => time > now + CLOCK_SKEW_MS;

/** "dated in the future: <time>, later than now (<now>) by more than the 15 minutes clocks may differ". */
export const futureDated = (time: number, now: number): string =>
  `dated in the future: ${new Date(time).toISOString()}, later than now (${new Date(now).toISOString()}) by more than the ${CLOCK_SKEW_MS / 60_000} minutes clocks may differ`;

export interface CompareOptions {
  /** The copy is the whole archive (the bucket's records/), not a part of it or a filtered export. */
  readonly whole: boolean;
  /**
   * The comparison's time, for the grace: a whole archive lacking a record older than the grace is a problem,
   * wherever in the chain the record is. Without it, records after the chain's last archived one are not
   * archived yet and those before its first were written before the archive, however old; and a record
   * dated in the future (past it and `CLOCK_SKEW_MS`) is not seen as such.
   */
  readonly now?: Date;
  /**
   * The table's records are dated by a simulation's scenarios (a local store `tollgate demo` filled), not by
   * the clock `now` reads: a date past `now` is then no forgery.
   */
  readonly simulated?: boolean;
  readonly graceMs?: number;
}

interface Entry {
  readonly hash: string;
  /** The record's time, as archived. */
  readonly time: number;
  /** What the archived content hashes to: `hash`, unless it was altered before it was archived. */
  readonly computed: string;
  readonly at: ArchiveLocation;
  /** The `changed-in-archive` problem said of this copy alone, if it was altered (see `add`). */
  readonly altered?: ArchiveProblem;
}

/** One line of the copy as an audit record, or an error naming the line, the field, what was expected. */
export function parseArchiveLine(text: string, at: ArchiveLocation): AuditRecord {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    // Where and what, as the findings reader says it (V8's own message has no place on Node 20).
    const found = jsonSyntaxError(text);
    const where = found ? ` at column ${found.offset + 1}` : '';
    throw new ArchiveLineError(
      at,
      '(the line)',
      'one JSON object',
      `text that is not JSON${where} (${found?.detail ?? 'unreadable'})`,
    );
  }
  // JSON.parse keeps the last of two equal keys: which copy the archive meant cannot be told.
  const duplicate = firstDuplicateKey(text);
  if (duplicate) {
    throw new ArchiveLineError(
      at,
      formatPath(duplicate.path),
      'each key once',
      `the key ${JSON.stringify(duplicate.key)} twice`,
    );
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ArchiveLineError(at, '(the line)', 'one JSON object (an audit record)', shown(value));
  }
  // The archive function writes only records that pass this same check (functions/archive/layout.ts).
  const problem = archivedRecordProblem(value as Record<string, unknown>);
  if (problem) throw new ArchiveLineError(at, problem.field, problem.expected, problem.got);
  return value as AuditRecord;
}

const short = (hash: string): string => hash.slice(0, 12);

/** A table record's hash, or '' (no hash's match) when its content cannot be hashed: compared, not thrown. */
function hashOrNothing(record: AuditRecord): string {
  try {
    return hashOf(record);
  } catch {
    return '';
  }
}

/**
 * What the copy holds, by chain and seq: one entry per distinct record (a record archived twice, as a halved
 * batch can leave it, is one), and the copy's own problems (records already altered, places held twice).
 */
export class ArchiveIndex {
  private readonly chains = new Map<string, Map<number, Entry>>();
  private readonly own = new Map<string, ArchiveProblem[]>();
  /** The earliest record time the copy holds, of any chain: when the archive began (as far as it shows). */
  private earliest = Number.POSITIVE_INFINITY;
  /** Lines read, duplicates included. */
  lines = 0;

  /**
   * A line of the copy left out of the comparison (another chain's, when one is compared): it still says when
   * the archive began.
   */
  saw(record: AuditRecord): void {
    this.began(Date.parse(record.time));
  }

  private began(time: number): void {
    if (!Number.isNaN(time) && !(time >= this.earliest)) this.earliest = time;
  }

  add(record: AuditRecord, at: ArchiveLocation): void {
    this.lines++;
    let chain = this.chains.get(record.pipeline);
    if (!chain) {
      chain = new Map();
      this.chains.set(record.pipeline, chain);
    }
    const held = chain.get(record.seq);
    if (held?.hash === record.hash) {
      // The hash a copy claims is only a claim: a second copy at the same place that claims it and holds
      // other content (a forged APPROVE beside the genuine REJECT) is found whichever was listed first.
      this.again(record, held, at);
      return;
    }
    if (held) {
      this.problem(record.pipeline, {
        pipeline: record.pipeline,
        seq: record.seq,
        kind: 'forked',
        detail: `the archive holds two records ${record.pipeline}#${record.seq}: ${short(held.hash)}… (${describeLocation(held.at)}) and ${short(record.hash)}… (${describeLocation(at)}); the table's was deleted and another inserted in its place`,
      });
      return;
    }
    const computed = hashOf(record);
    const time = Date.parse(record.time);
    this.began(time);
    let altered: ArchiveProblem | undefined;
    if (computed !== record.hash) {
      altered = {
        pipeline: record.pipeline,
        seq: record.seq,
        kind: 'changed-in-archive',
        detail: `the archived record (${describeLocation(at)}) hashes to ${short(computed)}…, not to its hash ${short(record.hash)}…: it was already altered when the table inserted it`,
      };
      this.problem(record.pipeline, altered);
    }
    chain.set(record.seq, { hash: record.hash, computed, time, at, ...(altered ? { altered } : {}) });
  }

  /**
   * Another copy of a held record claiming the same hash: the same record archived twice (a halved batch),
   * nothing to say; or other content under the genuine hash, `changed-in-archive` naming both copies. The
   * genuine copy is the one held, so the comparison with the table is the same whichever was read first, and
   * a held altered copy's own problem is replaced by the one naming both.
   */
  private again(record: AuditRecord, held: Entry, at: ArchiveLocation): void {
    const computed = hashOf(record);
    if (computed === held.computed) return;
    const chain = this.chains.get(record.pipeline);
    const copy: Entry = { hash: record.hash, computed, time: Date.parse(record.time), at };
    let genuine = held;
    let other = copy;
    if (computed === record.hash) {
      genuine = copy;
      other = held;
      chain?.set(record.seq, copy);
      this.began(copy.time);
    }
    // The held copy's own problem, if it was altered, is said again below with the other copy beside it.
    if (held.altered) this.unsay(record.pipeline, held.altered);
    const where = `${record.pipeline}#${record.seq}`;
    const detail =
      genuine.computed === genuine.hash
        ? `the archive holds two records ${where} with hash ${short(record.hash)}…: the one at ${describeLocation(genuine.at)} hashes to it, the one at ${describeLocation(other.at)} to ${short(other.computed)}…: that one was altered, and claims the genuine record's hash`
        : `the archive holds two records ${where} with hash ${short(record.hash)}…, and neither hashes to it: ${describeLocation(held.at)} hashes to ${short(held.computed)}…, ${describeLocation(at)} to ${short(computed)}…: both were altered`;
    this.problem(record.pipeline, {
      pipeline: record.pipeline,
      seq: record.seq,
      kind: 'changed-in-archive',
      detail,
    });
  }

  /**
   * A problem of the copy itself, found while reading it (an S3 object hidden behind a delete marker, or
   * overwritten): reported with the pipeline's comparison.
   */
  addProblem(problem: ArchiveProblem): void {
    this.problem(problem.pipeline, problem);
  }

  /** The copy's own problems (found while reading it), of every chain, in the order found. */
  ownProblems(): ArchiveProblem[] {
    return [...this.own.values()].flat();
  }

  /** The hash the copy holds at a place (the first read there), if any. */
  hashAt(pipeline: string, seq: number): string | undefined {
    return this.chains.get(pipeline)?.get(seq)?.hash;
  }

  /** Chains the copy holds records of (or has problems of), sorted. */
  pipelines(): string[] {
    return [...new Set([...this.chains.keys(), ...this.own.keys()])].sort();
  }

  /** Distinct records held. */
  get records(): number {
    let n = 0;
    for (const chain of this.chains.values()) n += chain.size;
    return n;
  }

  /**
   * Compares the table's chain (its records as stored, in seq order) with the copy. The table's own
   * verification (`verifyChain`) is separate: this says only whether the table still holds what was archived.
   */
  async compare(
    pipeline: string,
    table: AsyncIterable<AuditRecord> | Iterable<AuditRecord>,
    options: CompareOptions = { whole: true },
  ): Promise<ArchiveComparison> {
    const archived = this.chains.get(pipeline) ?? new Map<number, Entry>();
    const problems: ArchiveProblem[] = [...(this.own.get(pipeline) ?? [])];
    const span = range(archived.keys());
    const first = span?.from;
    const last = span?.to;
    /** By seq, what the table's first record there claims and hashes to. */
    const seen = new Map<number, { readonly hash: string; readonly computed: string }>();
    const unarchived: { seq: number; time: number; text: unknown }[] = [];
    let matched = 0;
    for await (const record of table) {
      const computed = hashOrNothing(record);
      // A record of another chain read among this one's (forged into its partition) is compared with nothing
      // here, and the chain it names holds no such record: only here can it be seen.
      if (record.pipeline !== pipeline) {
        problems.push({
          pipeline,
          seq: record.seq,
          kind: 'rewritten',
          detail: `the table's chain of ${pipeline} holds a record of another pipeline, ${String(record.pipeline)}#${record.seq} (hash ${short(record.hash)}…): not of this chain, and archived as nothing of it`,
        });
        continue;
      }
      const before = seen.get(record.seq);
      if (before !== undefined) {
        // The same record read twice is one; another at a place already read is a second record there, which
        // skipped would leave the first to speak for both.
        if (before.hash === record.hash && before.computed === computed) continue;
        problems.push({
          pipeline,
          seq: record.seq,
          kind: 'rewritten',
          detail: `the table holds two records ${pipeline}#${record.seq}: ${short(before.hash)}… and ${short(record.hash)}… (hashing to ${short(computed)}…); a record was inserted beside the one in its place`,
        });
        continue;
      }
      seen.set(record.seq, { hash: record.hash, computed });
      const entry = archived.get(record.seq);
      if (!entry) {
        unarchived.push({ seq: record.seq, time: Date.parse(record.time), text: record.time });
        continue;
      }
      if (entry.hash === record.hash) {
        // The stored hash is only a claim: a record edited in place keeps it, and must not count as archived.
        // An intact record whose archived copy was altered, or one the archive holds altered alike, is the
        // archive's problem, said once when it was read.
        if (computed === record.hash || computed === entry.computed) {
          matched++;
          continue;
        }
        problems.push({
          pipeline,
          seq: record.seq,
          kind: 'rewritten',
          detail: `the table's record ${pipeline}#${record.seq} was changed after it was archived: it hashes to ${short(computed)}…, not to the hash it and the archive (${describeLocation(entry.at)}) hold, ${short(record.hash)}…`,
        });
        continue;
      }
      problems.push({
        pipeline,
        seq: record.seq,
        kind: 'rewritten',
        detail: `the table's record ${pipeline}#${record.seq} (hash ${short(record.hash)}…) is not the one archived (${short(entry.hash)}…, ${describeLocation(entry.at)})`,
      });
    }
    for (const [seq, entry] of archived) {
      if (seen.has(seq)) continue;
      problems.push({
        pipeline,
        seq,
        kind: 'deleted',
        detail: `the table has no record ${pipeline}#${seq}; the archive has it (${describeLocation(entry.at)})`,
      });
    }
    const before: number[] = [];
    const after: number[] = [];
    let missingFromCopy = 0;
    // A whole archive is late only by its grace: a record older than that which it lacks was never archived,
    // before the chain's first archived record (if written after the archive began) or after its last. Else a
    // tail rewritten once the archive stopped (its stream mapping disabled, say) would pass as not archived
    // yet, however old.
    const graceMs = options.graceMs ?? ARCHIVE_GRACE_MS;
    const cutoff = options.whole && options.now ? options.now.getTime() - graceMs : undefined;
    const overdue = (time: number) => cutoff !== undefined && !(time >= cutoff);
    const sinceArchive = (time: number) =>
      cutoff !== undefined && Number.isFinite(this.earliest) && !(time < this.earliest + graceMs);
    // A record's time is its event's, only a lower bound on when it was appended: a late event's record,
    // appended a moment ago, may carry an old one and read as not archived until the archive writes it (a
    // minute). Each record is judged by its own time all the same: judging the tail by its newest record would
    // let one fresh record hide a stopped archive, or a rewritten tail, however old the rest.
    for (const { seq, time, text } of unarchived) {
      // A time that is no time (edited in the table) is judged overdue, and shown as it came: an Invalid Date
      // would fail the whole comparison, naming no record.
      const when = !Number.isNaN(time)
        ? new Date(time).toISOString()
        : text === undefined
          ? 'with no time (the record has none)'
          : `at ${shown(text)} (not a time)`;
      // Before where the record is: a future time is never past the grace, and a partial copy's lack of a
      // record excuses no such time.
      if (options.now !== undefined && !options.simulated && datedInFuture(time, options.now.getTime())) {
        problems.push({
          pipeline,
          seq,
          kind: 'not-archived',
          detail: `the table's record ${pipeline}#${seq} is not in the ${options.whole ? 'archive' : 'copy'}, and is ${futureDated(time, options.now.getTime())}: Tollgate dates a record by its event or its clock, never later, so its time was written by hand (a tail rewritten after the archive stopped, dated so that it reads as not archived yet), or this machine's clock is behind`,
        });
        continue;
      }
      const where =
        first === undefined || seq < first
          ? sinceArchive(time) && overdue(time)
            ? `written ${when}, after the archive began (its earliest record is of ${new Date(this.earliest).toISOString()})`
            : undefined
          : last !== undefined && seq > last
            ? overdue(time)
              ? `after the archive's last record of the chain (#${last}), and written ${when}, longer ago than the archive takes (${Math.round(graceMs / 60_000)} minutes): the archive stopped, or the chain's tail was rewritten since (or a late event's record was appended a moment ago: verify again in a minute)`
              : undefined
            : options.whole
              ? 'though records before and after it are'
              : undefined;
      if (where !== undefined) {
        problems.push({
          pipeline,
          seq,
          kind: 'not-archived',
          detail: `the table's record ${pipeline}#${seq} is not in the archive, ${where}: written with the table's stream off, a record the archive failed on (its dead-letter queue), or one rewritten`,
        });
      } else if (first === undefined || seq < first) before.push(seq);
      else if (last !== undefined && seq > last) after.push(seq);
      else missingFromCopy++;
    }
    problems.sort((a, b) => a.seq - b.seq);
    return {
      pipeline,
      archived: archived.size,
      matched,
      beforeArchive: range(before),
      notYetArchived: range(after),
      missingFromCopy,
      problems,
    };
  }

  private problem(pipeline: string, problem: ArchiveProblem): void {
    const list = this.own.get(pipeline) ?? [];
    list.push(problem);
    this.own.set(pipeline, list);
  }

  /** Takes back a problem said before (a copy's own, now said with the copy beside it). */
  private unsay(pipeline: string, problem: ArchiveProblem): void {
    const list = this.own.get(pipeline);
    const i = list?.indexOf(problem) ?? -1;
    if (list && i >= 0) list.splice(i, 1);
  }
}

/** The smallest and largest of `seqs`, or null for none. (A loop: a chain may hold more seqs than a call's arguments.) */
function range(seqs: Iterable<number>): SeqRange | null {
  let from = Number.POSITIVE_INFINITY;
  let to = Number.NEGATIVE_INFINITY;
  for (const seq of seqs) {
    if (seq < from) from = seq;
    if (seq > to) to = seq;
  }
  return from <= to ? { from, to } : null;
}
