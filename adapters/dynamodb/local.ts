import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import type { IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { createDocumentClient } from './store.js';

/*
 * An embedded dynalite for the local run and the tests. dynalite implements neither TransactWriteItems
 * nor its atomicity, and the store's `decide` is one TransactWriteItems. So this module puts a small
 * layer in front of dynalite's request handler:
 *
 * - Every request from outside runs alone, one after another (a process-wide lock). Nothing can then
 *   observe, or write between, the steps of a transaction.
 * - TransactWriteItems is carried out as its writes, in order, each with its own condition and
 *   `ReturnValues: ALL_OLD`; the first failure undoes the writes already done (restoring the old items)
 *   and answers TransactionCanceledException with a reason per item, as DynamoDB does. ConditionCheck is
 *   a conditional write of the item onto itself. A transaction of unconditional Puts only (the VULN# index
 *   items) has no order to keep: its writes go 25 at a time. The steps are sent to dynalite over HTTP with
 *   a secret header that lets them past the lock.
 *
 * - A TransactWriteItems that committed is remembered by its ClientRequestToken for 10 minutes, as DynamoDB
 *   does: the same request again (the SDK's retry after a lost answer) answers success and writes nothing;
 *   another request with that token is refused with IdempotentParameterMismatchException. The store relies
 *   on this: without it a retry of its own committed transaction would fail its conditions and read as a lost
 *   race.
 *
 * Differences from DynamoDB, none of which the store relies on: reasons after the first failure of an
 * ordered transaction say None (DynamoDB evaluates them all); only committed transactions are remembered by
 * token (a cancelled one, which wrote nothing, runs again); tokens are kept in memory, not across a restart;
 * and a crash between the steps can leave a transaction half done.
 */

interface DynaliteOptions {
  readonly path?: string;
  readonly createTableMs?: number;
  readonly deleteTableMs?: number;
  readonly updateTableMs?: number;
}

// dynalite is CommonJS and ships no type declarations.
const dynalite = createRequire(import.meta.url)('dynalite') as (options: DynaliteOptions) => Server;

export interface LocalDynamo {
  /** `http://127.0.0.1:<port>` */
  readonly endpoint: string;
  readonly client: DynamoDBDocumentClient;
  close(): Promise<void>;
}

export interface LocalDynamoOptions {
  /** Persist under this folder (created if missing); in memory without it. */
  readonly path?: string;
}

const INTERNAL_HEADER = 'x-tollgate-internal';
/** How many writes of a transaction of unconditional Puts go to dynalite at once. */
const PLAIN_PUTS_AT_ONCE = 25;
const API = 'DynamoDB_20120810';
/** How long DynamoDB keeps a TransactWriteItems' ClientRequestToken after the request completed. */
const TOKEN_WINDOW_MS = 10 * 60_000;

type Json = Record<string, unknown>;

function isJson(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** One request at a time: `acquire` resolves with the function that lets the next one in. */
function createLock(): () => Promise<() => void> {
  let tail: Promise<void> = Promise.resolve();
  return () => {
    let release = (): void => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const acquired = tail.then(() => release);
    tail = tail.then(() => held);
    return acquired;
  };
}

interface Answer {
  readonly status: number;
  readonly body: Json;
}

class TransactionShim {
  private readonly keyNames = new Map<string, readonly string[]>();
  /** Committed transactions by ClientRequestToken: the request's hash (the token left out) and when. */
  private readonly committed = new Map<string, { readonly hash: string; readonly atMs: number }>();

  constructor(
    private readonly endpoint: () => string,
    private readonly secret: string,
  ) {}

  async call(operation: string, input: Json): Promise<Answer> {
    const response = await fetch(this.endpoint(), {
      method: 'POST',
      headers: {
        'content-type': 'application/x-amz-json-1.0',
        'x-amz-target': `${API}.${operation}`,
        'x-amz-date': new Date().toISOString().replace(/[-:]|\.\d{3}/g, ''),
        // dynalite checks the header's shape, never the signature.
        authorization:
          'AWS4-HMAC-SHA256 Credential=local/20260101/local/dynamodb/aws4_request, SignedHeaders=host, Signature=0',
        [INTERNAL_HEADER]: this.secret,
      },
      body: JSON.stringify(input),
    });
    const body: unknown = await response.json();
    return { status: response.status, body: isJson(body) ? body : {} };
  }

  private async must(operation: string, input: Json): Promise<Json> {
    const answer = await this.call(operation, input);
    if (answer.status !== 200) {
      throw new Error(`${operation} failed inside a transaction: ${JSON.stringify(answer.body)}`);
    }
    return answer.body;
  }

  private async keyOf(table: string): Promise<readonly string[]> {
    let names = this.keyNames.get(table);
    if (!names) {
      const described = await this.must('DescribeTable', { TableName: table });
      const schema = isJson(described.Table) ? described.Table.KeySchema : undefined;
      names = (Array.isArray(schema) ? schema : []).map((k: unknown) =>
        String(isJson(k) ? k.AttributeName : ''),
      );
      this.keyNames.set(table, names);
    }
    return names;
  }

  /**
   * A TransactWriteItems with DynamoDB's idempotency: a token seen on a committed request within the window
   * answers that request's success again, or a mismatch when the request differs.
   */
  async transact(input: Json): Promise<Answer> {
    const token = input.ClientRequestToken;
    if (token === undefined) return this.execute(input);
    if (typeof token !== 'string' || token.length < 1 || token.length > 36) {
      return validation(
        `ClientRequestToken must be a string of 1 to 36 characters, got ${JSON.stringify(token)}`,
      );
    }
    const now = Date.now();
    for (const [seen, { atMs }] of this.committed) {
      if (now - atMs > TOKEN_WINDOW_MS) this.committed.delete(seen);
    }
    const { ClientRequestToken: _, ...request } = input;
    const hash = createHash('sha256').update(JSON.stringify(request)).digest('hex');
    const earlier = this.committed.get(token);
    if (earlier) {
      if (earlier.hash === hash) return { status: 200, body: {} };
      return {
        status: 400,
        body: {
          __type: 'com.amazonaws.dynamodb.v20120810#IdempotentParameterMismatchException',
          message: `ClientRequestToken ${token} was used within the last 10 minutes with a different request`,
        },
      };
    }
    const answer = await this.execute(input);
    if (answer.status === 200) this.committed.set(token, { hash, atMs: Date.now() });
    return answer;
  }

  private async execute(input: Json): Promise<Answer> {
    const items = Array.isArray(input.TransactItems) ? input.TransactItems : [];
    if (items.length === 0 || items.length > 100) {
      return validation('TransactItems must have between 1 and 100 items');
    }
    const steps: { kind: string; entry: Json; table: string; key: Json }[] = [];
    const seen = new Set<string>();
    for (const item of items) {
      const kinds = isJson(item) ? Object.keys(item).filter((k) => isJson(item[k])) : [];
      const kind = kinds[0];
      if (kinds.length !== 1 || kind === undefined || !isJson(item)) {
        return validation('each TransactItem must have exactly one of Put, Update, Delete, ConditionCheck');
      }
      const entry = item[kind] as Json;
      const table = String(entry.TableName);
      const names = await this.keyOf(table);
      const source = kind === 'Put' ? entry.Item : entry.Key;
      const key: Json = {};
      for (const name of names) key[name] = isJson(source) ? source[name] : undefined;
      const id = JSON.stringify([table, names.map((n) => key[n])]);
      if (seen.has(id)) {
        return validation('Transaction request cannot include multiple operations on one item');
      }
      seen.add(id);
      steps.push({ kind, entry, table, key });
    }

    if (steps.every((step) => step.kind === 'Put' && step.entry.ConditionExpression === undefined)) {
      return this.plainPuts(steps);
    }
    const written: Written[] = [];
    const reasons: Json[] = steps.map(() => ({ Code: 'None' }));
    for (const [i, step] of steps.entries()) {
      const answer = await this.apply(step.kind, step.entry, step.key);
      if (answer.status === 200) {
        if (step.kind !== 'ConditionCheck')
          written.push({ table: step.table, key: step.key, old: answer.body.Attributes });
        continue;
      }
      await this.undo(written);
      const { type, message } = failureOf(answer);
      if (answer.status >= 500) return { status: 500, body: { __type: type, message } };
      reasons[i] = type.endsWith('#ConditionalCheckFailedException')
        ? { Code: 'ConditionalCheckFailed', Message: 'The conditional request failed' }
        : { Code: 'ValidationError', Message: message };
      return cancelled(reasons);
    }
    return { status: 200, body: {} };
  }

  /** Puts back what a cancelled transaction's writes replaced, last first (or deletes what they created). */
  private async undo(written: readonly Written[]): Promise<void> {
    for (const { table, key, old } of [...written].reverse()) {
      if (isJson(old)) await this.must('PutItem', { TableName: table, Item: old });
      else await this.must('DeleteItem', { TableName: table, Key: key });
    }
  }

  /**
   * A transaction of unconditional Puts only (the store's VULN# index items): no step can depend on another
   * (distinct keys, no conditions), so they are sent PLAIN_PUTS_AT_ONCE at a time rather than one by one;
   * a failure (a validation error, an error of the server, or a request that did not get through) still
   * undoes every write done and fails the whole transaction.
   */
  private async plainPuts(steps: readonly { entry: Json; table: string; key: Json }[]): Promise<Answer> {
    const written: Written[] = [];
    const reasons: Json[] = steps.map(() => ({ Code: 'None' }));
    let server: Answer | undefined;
    let thrown: { readonly error: unknown } | undefined;
    let failed = false;
    for (let i = 0; i < steps.length && !failed; i += PLAIN_PUTS_AT_ONCE) {
      const batch = steps.slice(i, i + PLAIN_PUTS_AT_ONCE);
      const settled = await Promise.allSettled(batch.map((step) => this.apply('Put', step.entry, step.key)));
      for (const [j, result] of settled.entries()) {
        const { table, key } = batch[j]!;
        if (result.status === 'rejected') {
          failed = true;
          thrown ??= { error: result.reason };
        } else if (result.value.status === 200) {
          written.push({ table, key, old: result.value.body.Attributes });
        } else {
          failed = true;
          if (result.value.status >= 500) server ??= result.value;
          reasons[i + j] = { Code: 'ValidationError', Message: failureOf(result.value).message };
        }
      }
    }
    if (!failed) return { status: 200, body: {} };
    await this.undo(written);
    if (thrown) throw thrown.error;
    if (server) {
      const { type, message } = failureOf(server);
      return { status: 500, body: { __type: type, message } };
    }
    return cancelled(reasons);
  }

  private async apply(kind: string, entry: Json, key: Json): Promise<Answer> {
    const { ReturnValuesOnConditionCheckFailure: _, ...request } = entry;
    switch (kind) {
      case 'Put':
        return this.call('PutItem', { ...request, ReturnValues: 'ALL_OLD' });
      case 'Update':
        return this.call('UpdateItem', { ...request, ReturnValues: 'ALL_OLD' });
      case 'Delete':
        return this.call('DeleteItem', { ...request, ReturnValues: 'ALL_OLD' });
      case 'ConditionCheck': {
        // dynalite evaluates conditions only on writes: write the item onto itself (or delete the absent one).
        const { Key: _key, ...condition } = request;
        const current = await this.must('GetItem', {
          TableName: request.TableName,
          Key: key,
          ConsistentRead: true,
        });
        return isJson(current.Item)
          ? this.call('PutItem', { ...condition, Item: current.Item })
          : this.call('DeleteItem', { ...condition, Key: key });
      }
      default:
        return validation(`unknown TransactItem ${kind}`);
    }
  }
}

/** DynamoDB's answer to a cancelled transaction: a reason per item, in order. */
/** A write a transaction made, and what it replaced (undefined: the item was new). */
interface Written {
  readonly table: string;
  readonly key: Json;
  readonly old: unknown;
}

/** The error type and message of a refused request, as dynalite answers them. */
function failureOf(answer: Answer): { type: string; message: string } {
  return {
    type: String(answer.body.__type ?? ''),
    message: String(answer.body.message ?? answer.body.Message ?? ''),
  };
}

function cancelled(reasons: readonly Json[]): Answer {
  return {
    status: 400,
    body: {
      __type: 'com.amazonaws.dynamodb.v20120810#TransactionCanceledException',
      Message: `Transaction cancelled, please refer cancellation reasons for specific reasons [${reasons
        .map((r) => String(r.Code))
        .join(', ')}]`,
      CancellationReasons: reasons,
    },
  };
}

function validation(message: string): Answer {
  return { status: 400, body: { __type: 'com.amazon.coral.validate#ValidationException', message } };
}

function send(res: ServerResponse, answer: Answer): void {
  const body = JSON.stringify(answer.body);
  res.writeHead(answer.status, {
    'content-type': 'application/x-amz-json-1.0',
    'content-length': Buffer.byteLength(body),
    'x-amzn-requestid': randomUUID(),
  });
  res.end(body);
}

async function readJson(req: IncomingMessage): Promise<Json | undefined> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  try {
    const parsed: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    return isJson(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/** Starts dynalite on 127.0.0.1 (a free port) with TransactWriteItems, and a document client for it. */
export async function startLocalDynamo(options: LocalDynamoOptions = {}): Promise<LocalDynamo> {
  if (options.path !== undefined) await mkdir(options.path, { recursive: true });
  const server = dynalite({
    ...(options.path !== undefined ? { path: options.path } : {}),
    createTableMs: 0,
    deleteTableMs: 0,
    updateTableMs: 0,
  });
  const [handler] = server.listeners('request') as RequestListener[];
  if (!handler) throw new Error('dynalite did not register a request handler');
  server.removeAllListeners('request');

  let endpoint = '';
  const secret = randomBytes(16).toString('hex');
  const shim = new TransactionShim(() => endpoint, secret);
  const acquire = createLock();

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (req.headers[INTERNAL_HEADER] === secret) {
      handler(req, res);
      return;
    }
    // Listen now: a client that goes away while queued must still let the next request in.
    const finished = new Promise<void>((resolve) => res.once('close', resolve));
    void acquire().then(async (release) => {
      void finished.then(release);
      if (req.headers['x-amz-target'] !== `${API}.TransactWriteItems`) {
        handler(req, res);
        return;
      }
      try {
        const input = await readJson(req);
        send(res, input ? await shim.transact(input) : validation('the request is not a JSON object'));
      } catch (error) {
        send(res, {
          status: 500,
          body: { __type: 'com.amazonaws.dynamodb.v20120810#InternalServerError', message: String(error) },
        });
      }
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const client = createDocumentClient({ endpoint });

  return {
    endpoint,
    client,
    close: async () => {
      client.destroy();
      await new Promise<void>((resolve, reject) =>
        server.close((error) => (error ? reject(error) : resolve())),
      );
    },
  };
}
