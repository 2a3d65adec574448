import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { GetCommand, PutCommand, TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type LocalDynamo, startLocalDynamo } from '../adapters/dynamodb/local.js';
import { createDocumentClient, DynamoStore } from '../adapters/dynamodb/store.js';
import { ensureTable } from '../adapters/dynamodb/table.js';
import type { Gate, GateKey } from '../shared/gate/model.js';
import { sampleGate } from './helpers.js';

/*
 * Writes whose answer is lost: a proxy in front of dynalite forwards a request (so the write lands, or
 * fails, as dynalite decides) and answers the client 500 instead, so the SDK sends the same request again
 * and meets its own write.
 */

const TABLE = `tollgate-lost-${process.pid}-${Date.now()}`;

let dynamo: LocalDynamo;
let proxy: http.Server;
/** Through the proxy. */
let store: DynamoStore;
/** Straight to dynalite: another writer, and the test's own reads. */
let direct: DynamoStore;
let proxied: ReturnType<typeof createDocumentClient>;

/** The next request of this operation (PutItem, TransactWriteItems) loses its answer; the others pass. */
let loseNext: string | undefined;
/** Each request seen: operation, dynalite's status, whether its answer was lost, its ClientRequestToken. */
let seen: { op: string; status: number; lost: boolean; token?: string }[] = [];

beforeAll(async () => {
  dynamo = await startLocalDynamo();
  await ensureTable(dynamo.client, TABLE);
  proxy = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const headers = { ...req.headers } as Record<string, string>;
    delete headers.host;
    const up = await fetch(dynamo.endpoint, { method: 'POST', headers, body });
    const text = await up.text();
    const op = String(req.headers['x-amz-target']).split('.')[1] ?? '';
    const token = (JSON.parse(body.toString('utf8')) as { ClientRequestToken?: string }).ClientRequestToken;
    const lost = loseNext === op;
    if (lost) loseNext = undefined;
    seen.push({ op, status: up.status, lost, ...(token ? { token } : {}) });
    res.writeHead(lost ? 500 : up.status, { 'content-type': 'application/x-amz-json-1.0' });
    res.end(
      lost
        ? JSON.stringify({ __type: 'com.amazonaws.dynamodb.v20120810#InternalServerError', message: 'lost' })
        : text,
    );
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  proxied = createDocumentClient({ endpoint: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}` });
  store = new DynamoStore(proxied, TABLE);
  direct = new DynamoStore(dynamo.client, TABLE);
});

afterAll(async () => {
  proxied?.destroy();
  await new Promise<void>((resolve) => (proxy ? proxy.close(() => resolve()) : resolve()));
  await dynamo?.close();
});

beforeEach(() => {
  loseNext = undefined;
  seen = [];
});

let serial = 0;

function key(): GateKey {
  serial++;
  return { pipeline: 'payments-prod', executionId: `lost-${serial}`, stage: 'Security', action: 'Tollgate' };
}

function gate(overrides: Partial<Gate> = {}): Gate {
  return sampleGate(key(), overrides);
}

/** The request was sent again after its answer was lost (else the test proves nothing). */
function expectRetried(op: string): void {
  const ofOp = seen.filter((s) => s.op === op);
  expect(ofOp.length).toBeGreaterThanOrEqual(2);
  expect(ofOp[0]?.lost).toBe(true);
}

describe('a conditional Put whose answer is lost', () => {
  it('createGate (no run, no audit) answers true when its own write landed', async () => {
    const g = gate();
    loseNext = 'PutItem';
    expect(await store.createGate(g)).toBe(true);
    expectRetried('PutItem');
    expect(seen[0]?.status).toBe(200);
    expect(await direct.getGate(g.key)).toEqual(g);
  });

  it('updateGate (no audit) answers true when its own write landed', async () => {
    const g = gate();
    expect(await direct.createGate(g)).toBe(true);
    const stale = { ...g, version: 2, state: 'STALE' as const, updatedAt: '2026-11-25T12:01:00.000Z' };
    loseNext = 'PutItem';
    expect(await store.updateGate(stale, 1)).toBe(true);
    expectRetried('PutItem');
    expect(seen[0]?.status).toBe(200);
    // What the gate reads back is the gate as given: the write's revision stays outside it.
    expect(await direct.getGate(g.key)).toEqual(stale);
  });

  it('still answers false when someone else got there first, answer lost or not', async () => {
    const g = gate();
    expect(await direct.createGate(g)).toBe(true);
    expect(await store.createGate({ ...g, account: '210987654321' })).toBe(false);
    // The losing attempt's own answer lost: the retry meets the other writer's gate, not this one.
    seen = [];
    loseNext = 'PutItem';
    expect(await store.createGate({ ...g, account: '210987654321' })).toBe(false);
    expectRetried('PutItem');
    expect(seen[0]?.status).toBe(400);

    const winner = { ...g, version: 2, state: 'STALE' as const };
    expect(await direct.updateGate(winner, 1)).toBe(true);
    seen = [];
    loseNext = 'PutItem';
    expect(await store.updateGate({ ...g, version: 2, state: 'CLOSED' }, 1)).toBe(false);
    expectRetried('PutItem');
    expect(await direct.getGate(g.key)).toEqual(winner);
  });
});

describe('a TransactWriteItems whose answer is lost (the SDK sends its ClientRequestToken again)', () => {
  it('createGate with its run claim answers true: the local table replays the committed request', async () => {
    const g = gate({ actionExecutionId: `run-${serial}` });
    loseNext = 'TransactWriteItems';
    expect(await store.createGate(g)).toBe(true);
    expectRetried('TransactWriteItems');
    const [first, second] = seen.filter((s) => s.op === 'TransactWriteItems');
    expect(first?.token).toBeDefined();
    expect(second?.token).toBe(first?.token);
    expect(await direct.getGate(g.key)).toEqual(g);
    expect(await direct.gateOfRun(g.actionExecutionId!)).toEqual(g.key);
  });

  it('answers the same token with another request IdempotentParameterMismatchException, and writes nothing', async () => {
    const pk = `TOKEN#${Date.now()}`;
    const put = (v: number) => ({
      TransactItems: [
        {
          Put: {
            TableName: TABLE,
            Item: { pk, sk: 'x', v },
            ConditionExpression: 'attribute_not_exists(pk)',
          },
        },
      ],
      ClientRequestToken: `token-${pk}`,
    });
    await dynamo.client.send(new TransactWriteCommand(put(1)));
    // Changed since (marked), so that a replay that wrote again would show: the same request again succeeds
    // and writes nothing, and another request under the token is refused.
    await dynamo.client.send(
      new PutCommand({ TableName: TABLE, Item: { pk, sk: 'x', v: 1, touched: false } }),
    );
    await dynamo.client.send(new TransactWriteCommand(put(1)));
    await expect(dynamo.client.send(new TransactWriteCommand(put(2)))).rejects.toMatchObject({
      name: 'IdempotentParameterMismatchException',
    });
    const item = await dynamo.client.send(new GetCommand({ TableName: TABLE, Key: { pk, sk: 'x' } }));
    expect(item.Item).toEqual({ pk, sk: 'x', v: 1, touched: false });
  });
});
