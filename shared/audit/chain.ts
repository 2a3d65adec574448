import { createHash } from 'node:crypto';
import { shown } from '../text.js';
import { type AuditEntry, type AuditRecord, GENESIS } from './record.js';

/*
 * The hash chain of the audit trail, pure (no SDK): the canonical form of a record, its hash, the next
 * record of a chain, and the verification of a chain as stored.
 */

/**
 * An append lost its place: another record took the seq, or the head moved on since it was read (another
 * gate of the pipeline appended meanwhile). The append wrote nothing; read the head again and re-chain.
 */
export class ChainHeadMovedError extends Error {
  constructor(
    readonly pipeline: string,
    readonly seq: number,
  ) {
    super(`audit chain ${pipeline}: the head moved on before record ${seq} could be appended`);
    this.name = 'ChainHeadMovedError';
  }
}

/** Where a chain ends: the last record's seq and hash. `pipeline` says which chain, when a stream holds several. */
export interface ChainHead {
  readonly seq: number;
  readonly hash: string;
  readonly pipeline?: string;
}

/**
 * `unindexed` is the store's: a record whose stored index keys are not the ones its content gives, so that
 * the queries that go through those indexes (by outcome, day, digest) do not find it, or find it elsewhere.
 */
export type ChainProblemKind = 'missing' | 'changed' | 'reordered' | 'head-mismatch' | 'unindexed';

export interface ChainProblem {
  readonly pipeline: string;
  /** The record the problem is about: the changed one, the first missing seq, the first out of place. */
  readonly seq: number;
  readonly kind: ChainProblemKind;
  readonly detail: string;
}

export interface VerifyResult {
  readonly ok: boolean;
  /** Records read. */
  readonly records: number;
  /** At most one per pipeline: the first problem of its chain (after it, the chain proves nothing more). */
  readonly problems: ChainProblem[];
}

/**
 * JSON with the keys of every object sorted (by UTF-16 code units), no whitespace, and `undefined`
 * properties dropped (as JSON.stringify drops them). Deterministic: the same value always gives the same
 * text, whatever the order its keys were written in (a DynamoDB map comes back in any order).
 */
export function canonical(value: unknown): string {
  return write(value, '');
}

function write(value: unknown, path: string): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`canonical: ${path || 'the value'} is ${value}`);
      return JSON.stringify(value);
    case 'object': {
      if (Array.isArray(value)) {
        return `[${value.map((item, i) => (item === undefined ? 'null' : write(item, `${path}[${i}]`))).join(',')}]`;
      }
      const object = value as Record<string, unknown>;
      const parts: string[] = [];
      for (const key of Object.keys(object).sort()) {
        const item = object[key];
        if (item === undefined) continue;
        parts.push(`${JSON.stringify(key)}:${write(item, path ? `${path}.${key}` : key)}`);
      }
      return `{${parts.join(',')}}`;
    }
    default:
      throw new TypeError(`canonical: ${path || 'the value'} is a ${typeof value}`);
  }
}

/** SHA-256 (hex) of a record's canonical form, without its `hash` (dropped if present). */
export function hashOf(record: Omit<AuditRecord, 'hash'> | AuditRecord): string {
  const { hash: _hash, ...content } = record as AuditRecord;
  return createHash('sha256').update(canonical(content), 'utf8').digest('hex');
}

/** A field of an archived record that is not as the archive needs it: which, what was expected, what came. */
export interface ArchivedFieldProblem {
  readonly field: string;
  readonly expected: string;
  readonly got: string;
}

const HEX64 = /^[0-9a-f]{64}$/;

/**
 * What a record must hold to be an archive line (`parseArchiveLine` reads each so): its place, both hashes in
 * hex, and content that can be hashed. One check for the reader and the archive function, which writes to
 * an Object-Locked bucket: a line the reader refuses would fail every later `verify --archive` of the whole
 * archive, and could never be removed.
 */
export function archivedRecordProblem(
  r: Readonly<Record<string, unknown>>,
): ArchivedFieldProblem | undefined {
  if (typeof r.pipeline !== 'string' || r.pipeline === '') {
    return { field: 'pipeline', expected: 'a pipeline name', got: shown(r.pipeline) };
  }
  if (typeof r.seq !== 'number' || !Number.isSafeInteger(r.seq) || r.seq < 1) {
    return { field: 'seq', expected: 'a whole number from 1', got: shown(r.seq) };
  }
  for (const field of ['hash', 'prevHash'] as const) {
    const value = r[field];
    if (typeof value !== 'string' || !HEX64.test(value)) {
      return { field, expected: 'a SHA-256 in lower-case hex (64 characters)', got: shown(value) };
    }
  }
  // A number beyond a double (read as Infinity) has no canonical form: the line's hash cannot be checked.
  try {
    hashOf(r as unknown as AuditRecord);
  } catch (e) {
    return {
      field: '(the record)',
      expected: 'a record whose content can be hashed',
      got: (e as Error).message,
    };
  }
  return undefined;
}

/** The record that follows `previous` (the chain's head) in `pipeline`'s chain; seq 1 after GENESIS when there is none. */
export function chainRecord(
  entry: AuditEntry,
  pipeline: string,
  previous: { readonly seq: number; readonly hash: string } | undefined,
): AuditRecord {
  const content: Omit<AuditRecord, 'hash'> = {
    ...entry,
    pipeline,
    seq: previous ? previous.seq + 1 : 1,
    prevHash: previous ? previous.hash : GENESIS,
  };
  return { ...content, hash: hashOf(content) };
}

/** Per pipeline: the last record accepted, one record of lookahead, and the first problem once found. */
interface ChainState {
  readonly pipeline: string;
  last: AuditRecord | undefined;
  pending: AuditRecord | undefined;
  /** The highest seq seen, to tell a record out of place from one that is missing. */
  seen: Set<number>;
  problem: ChainProblem | undefined;
}

const short = (hash: string): string => `${hash.slice(0, 12)}…`;

/**
 * Recomputes chains as stored, in the order given (a store yields each chain by seq) and names the FIRST
 * problem of each:
 *
 * - `changed`: a record's hash does not match its content (edited), or the next record's `prevHash` does not
 *   match it (edited and re-hashed): the problem names the edited record;
 * - `missing`: a gap in seq (deleted), or fewer records than the head says;
 * - `reordered`: a record out of seq order, a seq twice, or a pair whose links cross (swapped);
 * - `head-mismatch`: the record at the head's seq has another hash than the head (the chain was rewritten
 *   and re-hashed from somewhere, or the head itself was altered).
 *
 * Records of several pipelines may be interleaved: each pipeline is its own chain (a store reading one
 * pipeline's partition keeps another pipeline's records out itself: `placeProblem`). `head` applies to
 * `head.pipeline`, or to the pipeline of the first record. Records beyond the head's seq (appended after the
 * head was read) are verified as links, not against the head. Streams: holds one record per chain.
 */
export async function verifyChain(
  records: AsyncIterable<AuditRecord> | Iterable<AuditRecord>,
  head?: ChainHead,
): Promise<VerifyResult> {
  const chains = new Map<string, ChainState>();
  let count = 0;
  let headPipeline = head?.pipeline;
  let headSeen = false;

  const stateOf = (pipeline: string): ChainState => {
    let state = chains.get(pipeline);
    if (!state) {
      state = { pipeline, last: undefined, pending: undefined, seen: new Set(), problem: undefined };
      chains.set(pipeline, state);
    }
    return state;
  };

  const fail = (state: ChainState, seq: number, kind: ChainProblemKind, detail: string): void => {
    state.problem ??= { pipeline: state.pipeline, seq, kind, detail };
  };

  /** Accepts `record` (already known to follow `state.last` by seq) with `next` as lookahead. */
  const check = (state: ChainState, record: AuditRecord, next: AuditRecord | undefined): void => {
    if (state.problem) return;
    const last = state.last;
    const expected = last ? last.seq + 1 : 1;
    const expectedPrev = last ? last.hash : GENESIS;
    if (!Number.isInteger(record.seq) || record.seq < 1) {
      fail(state, expected, 'changed', `record ${String(record.seq)} after ${expected - 1} has no valid seq`);
      return;
    }
    if (record.seq !== expected) {
      if (record.seq < expected || state.seen.has(record.seq)) {
        fail(
          state,
          record.seq,
          'reordered',
          state.seen.has(record.seq)
            ? `seq ${record.seq} appears twice`
            : `record ${record.seq} comes after record ${expected - 1}`,
        );
      } else if (next && next.seq === expected) {
        fail(
          state,
          expected,
          'reordered',
          `record ${record.seq} is stored before record ${expected} (a swapped pair: seq order and prevHash links disagree)`,
        );
      } else {
        const to = record.seq - 1;
        fail(
          state,
          expected,
          'missing',
          to === expected
            ? `record ${expected} is missing (record ${record.seq} follows record ${expected - 1})`
            : `records ${expected}–${to} are missing (record ${record.seq} follows record ${expected - 1})`,
        );
      }
      return;
    }
    // The seq is in place; a pair whose links cross was swapped with its seq fields rewritten.
    if (
      record.prevHash !== expectedPrev &&
      next &&
      next.prevHash === expectedPrev &&
      record.prevHash === next.hash
    ) {
      fail(
        state,
        record.seq,
        'reordered',
        `records ${record.seq} and ${next.seq} are swapped: ${record.seq} chains to ${next.seq}, ${next.seq} to ${expected - 1}`,
      );
      return;
    }
    const recomputed = hashOf(record);
    if (recomputed !== record.hash) {
      fail(
        state,
        record.seq,
        'changed',
        `record ${record.seq} was changed: its content hashes to ${short(recomputed)}, it says ${short(record.hash)}`,
      );
      return;
    }
    if (record.prevHash !== expectedPrev) {
      if (last) {
        fail(
          state,
          last.seq,
          'changed',
          `record ${last.seq} was changed: record ${record.seq} chains to ${short(record.prevHash)}, record ${last.seq} hashes to ${short(last.hash)}`,
        );
      } else {
        fail(state, record.seq, 'changed', `record 1 was changed: its prevHash is not the genesis hash`);
      }
      return;
    }
    state.last = record;
    state.seen.add(record.seq);
  };

  const headCheck = (state: ChainState, record: AuditRecord): void => {
    if (!head || state.problem || state.pipeline !== headPipeline || record.seq !== head.seq) return;
    headSeen = true;
    if (record.hash !== head.hash) {
      fail(
        state,
        head.seq,
        'head-mismatch',
        `the chain head says record ${head.seq} hashes to ${short(head.hash)}, the record hashes to ${short(record.hash)} (rewritten and re-hashed, or the head altered)`,
      );
    }
  };

  const advance = (state: ChainState, next: AuditRecord | undefined): void => {
    const record = state.pending;
    state.pending = next;
    if (!record) return;
    check(state, record, next);
    if (state.last === record) headCheck(state, record);
  };

  for await (const record of records) {
    count++;
    const pipeline = typeof record.pipeline === 'string' ? record.pipeline : String(record.pipeline);
    headPipeline ??= pipeline;
    advance(stateOf(pipeline), record);
  }
  for (const state of chains.values()) advance(state, undefined);

  if (head && head.seq > 0 && !headSeen) {
    const state = stateOf(headPipeline ?? '');
    const found = state.last?.seq ?? 0;
    if (found < head.seq) {
      fail(
        state,
        found + 1,
        'missing',
        `the chain head says ${head.seq} record(s), the chain ends at ${found}${found + 1 === head.seq ? `: record ${head.seq} is missing` : `: records ${found + 1}–${head.seq} are missing`}`,
      );
    }
  }

  const problems = [...chains.values()]
    .map((state) => state.problem)
    .filter((problem): problem is ChainProblem => problem !== undefined);
  return { ok: problems.length === 0, records: count, problems };
}
