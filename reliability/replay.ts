import { createHash } from 'node:crypto';
import { DeleteTableCommand } from '@aws-sdk/client-dynamodb';
import { type DynamoDBDocumentClient, paginateScan } from '@aws-sdk/lib-dynamodb';
import { DynamoAuditStore } from '../adapters/dynamodb/audit-store.js';
import { type LocalDynamo, startLocalDynamo } from '../adapters/dynamodb/local.js';
import { createDocumentClient } from '../adapters/dynamodb/store.js';
import { ensureTable } from '../adapters/dynamodb/table.js';
import type { VerifyResult } from '../shared/audit/chain.js';
import { gateId } from '../shared/gate/model.js';
import { runScenario, type SimulationOptions, type SimulationResult } from '../simulator/run.js';
import type { LoadedScenario } from '../simulator/scenario.js';
import type { World } from '../simulator/world.js';

/*
 * Replays for the suite: one embedded dynalite for the whole run, a fresh table per replay (dropped after
 * it), and the handlers' log lines captured while the replay runs, as Lambda would ship them to CloudWatch.
 */

export type ReplayOptions = Omit<SimulationOptions, 'doc' | 'tableName' | 'onWorld' | 'logLevel'>;

export interface Replay {
  readonly result: SimulationResult;
  readonly world: World;
  /** Every line the functions wrote to stdout and stderr during the replay. */
  readonly logs: readonly string[];
  /** The audit trail the replay left: its chains verified, and its records counted per gate and type. */
  readonly audit: AuditFacts;
}

export interface AuditFacts {
  readonly verify: VerifyResult;
  /** What the raw items say of the chains, read and hashed without the store's code (rawChainProblems). */
  readonly raw: readonly string[];
  /** Decision records per gate id. */
  readonly decisions: ReadonlyMap<string, number>;
}

export class Replayer {
  private tables = 0;

  /** Reads the audit trail after a replay without going through the world (no counted, no failed calls). */
  private readonly reader: DynamoDBDocumentClient;

  private constructor(private readonly dynamo: LocalDynamo) {
    this.reader = createDocumentClient({ endpoint: dynamo.endpoint });
  }

  static async start(): Promise<Replayer> {
    // The lines Lambda ships: one JSON object a line on stdout. Powertools' dev mode would pretty-print them
    // to the global console instead, where the capture below would not see them.
    delete process.env.POWERTOOLS_DEV;
    return new Replayer(await startLocalDynamo());
  }

  /** Replays so far. */
  get runs(): number {
    return this.tables;
  }

  async replay(loaded: LoadedScenario, options: ReplayOptions = {}): Promise<Replay> {
    return this.withTable(async (doc, tableName) => {
      let world: World | undefined;
      const capture = new LogCapture();
      const result = await capture.during(() =>
        runScenario(loaded, {
          ...options,
          doc,
          tableName,
          logLevel: 'DEBUG',
          onWorld: (w) => {
            world = w;
          },
        }),
      );
      // Verified on the scenario's clock: its records are dated by it, days past the real one in a long run.
      const audit = await auditFacts(this.reader, tableName, world!.now());
      return { result, world: world!, logs: capture.lines, audit };
    });
  }

  /** A fresh table for `work`, dropped after it. */
  async withTable<T>(work: (doc: DynamoDBDocumentClient, tableName: string) => Promise<T>): Promise<T> {
    const tableName = `tollgate-reliability-${process.pid}-${++this.tables}`;
    const doc = this.dynamo.client;
    await ensureTable(doc, tableName);
    try {
      return await work(doc, tableName);
    } finally {
      await doc.send(new DeleteTableCommand({ TableName: tableName })).catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    this.reader.destroy();
    await this.dynamo.close();
  }
}

/**
 * Every chain of the table verified against its head (at `now`, the clock that dated the records: one in the
 * future is a forgery), and the decision records counted per gate.
 */
export async function auditFacts(
  doc: DynamoDBDocumentClient,
  tableName: string,
  now: Date = new Date(),
): Promise<AuditFacts> {
  const audit = new DynamoAuditStore(doc, tableName);
  const decisions = new Map<string, number>();
  for (const pipeline of await audit.pipelines()) {
    for await (const record of audit.chain(pipeline)) {
      if (record.type !== 'decision') continue;
      const id = gateId(record.gate);
      decisions.set(id, (decisions.get(id) ?? 0) + 1);
    }
  }
  return {
    verify: await audit.verify(undefined, undefined, undefined, now),
    decisions,
    raw: await rawChainProblems(doc, tableName),
  };
}

/** The first record's `prevHash` (shared/audit/record.ts GENESIS, written out here on purpose). */
const FIRST_PREV_HASH = '0'.repeat(64);

/**
 * The chains as stored, checked without the store's code: every item read raw (a Scan), each record's hash
 * recomputed (SHA-256 of its JSON with every object's keys sorted, `hash` left out), each linked to the one
 * before it, the seqs 1, 2, 3, … and the head naming the last. A bug that the store's writing and its own
 * `verify` shared would agree with itself; this does not share their code.
 */
export async function rawChainProblems(doc: DynamoDBDocumentClient, tableName: string): Promise<string[]> {
  const chains = new Map<string, Record<string, unknown>[]>();
  const heads = new Map<string, { seq: unknown; hash: unknown }>();
  for await (const page of paginateScan({ client: doc }, { TableName: tableName, ConsistentRead: true })) {
    for (const item of page.Items ?? []) {
      const pk = String(item.pk);
      if (!pk.startsWith('AUDIT#')) continue;
      if (item.sk === 'HEAD') heads.set(pk, { seq: item.seq, hash: item.hash });
      else if (
        String(item.sk).startsWith('SEQ#') &&
        typeof item.record === 'object' &&
        item.record !== null
      ) {
        chains.set(pk, [...(chains.get(pk) ?? []), item.record as Record<string, unknown>]);
      }
    }
  }
  const sorted = (value: unknown): unknown =>
    Array.isArray(value)
      ? value.map(sorted)
      : typeof value === 'object' && value !== null
        ? Object.fromEntries(
            Object.keys(value)
              .sort()
              .map((k) => [k, sorted((value as Record<string, unknown>)[k])]),
          )
        : value;
  const problems: string[] = [];
  for (const pk of new Set([...chains.keys(), ...heads.keys()])) {
    const records = [...(chains.get(pk) ?? [])].sort((a, b) => Number(a.seq) - Number(b.seq));
    let prev = FIRST_PREV_HASH;
    for (const [i, record] of records.entries()) {
      const { hash, ...content } = record;
      const at = `${pk} #${String(record.seq)}`;
      if (record.seq !== i + 1) problems.push(`${at}: expected seq ${i + 1}`);
      if (record.prevHash !== prev) problems.push(`${at}: prevHash is not the previous record's hash`);
      const recomputed = createHash('sha256')
        .update(JSON.stringify(sorted(content)), 'utf8')
        .digest('hex');
      if (hash !== recomputed) problems.push(`${at}: its hash is not the SHA-256 of its content`);
      prev = String(hash);
    }
    const head = heads.get(pk);
    const last = records.at(-1);
    if (head === undefined || last === undefined || head.seq !== last.seq || head.hash !== last.hash) {
      problems.push(`${pk}: the head does not name the last record`);
    }
  }
  return problems;
}

type Write = typeof process.stdout.write;

/**
 * Captures what is written to stdout and stderr (Powertools Logger writes one JSON document per line there,
 * through its own Console on the process streams) while `work` runs, and keeps it off the terminal.
 */
export class LogCapture {
  readonly lines: string[] = [];
  private partial = '';

  async during<T>(work: () => Promise<T>): Promise<T> {
    const out = process.stdout.write;
    const err = process.stderr.write;
    const take = ((chunk: unknown, ...rest: unknown[]): boolean => {
      this.take(typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8'));
      const callback = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
      callback?.();
      return true;
    }) as Write;
    process.stdout.write = take;
    process.stderr.write = take;
    try {
      return await work();
    } finally {
      process.stdout.write = out;
      process.stderr.write = err;
      if (this.partial !== '') this.lines.push(this.partial);
      this.partial = '';
    }
  }

  private take(text: string): void {
    const parts = (this.partial + text).split('\n');
    this.partial = parts.pop() ?? '';
    for (const line of parts) if (line.trim() !== '') this.lines.push(line);
  }
}
