import { createHash } from 'node:crypto';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  PutObjectCommand,
  type PutObjectCommandInput,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import type { Context } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { headItem, indexItem, pendingItem, registryItem } from '../adapters/dynamodb/audit-items.js';
import { TTL_ATTRIBUTE } from '../adapters/dynamodb/table.js';
import { archiveBatch, archiveHandler, auditRecordsOf } from '../functions/archive/handler.js';
import {
  archiveObjects,
  keySafe,
  MalformedAuditItemError,
  pad,
  partitionDate,
  RECORDS_PREFIX,
} from '../functions/archive/layout.js';
import { localObservability } from '../functions/common/runtime.js';
import { canonical, hashOf } from '../shared/audit/chain.js';
import type { AuditRecord } from '../shared/audit/record.js';
import { auditItem, chain, entry, eventOf, inserts, streamRecord, TTL_IDENTITY } from './archive-fixtures.js';

/*
 * The archive function against real-shaped DynamoDB stream events (archive-fixtures.ts: items as the audit
 * store writes them, marshalled as the stream delivers NEW_IMAGE), S3 mocked with aws-sdk-client-mock, and once
 * against a local HTTP server, to see what the SDK really sends and how it reads S3's 412 and 409.
 */

const BUCKET = 'tollgate-archive-bucket';
// This client's send is mocked; the wire test at the end builds its own.
const client = new S3Client({ region: 'eu-west-1' });
const s3 = mockClient(client);
afterEach(() => {
  s3.reset();
  vi.restoreAllMocks();
});

const NO_WAIT = { attempts: 3, baseMs: 1, sleep: async () => undefined };

function deps() {
  const { logger, metrics } = localObservability('SILENT');
  return { s3: client, bucket: BUCKET, logger, metrics, retry: NO_WAIT };
}

function puts(): PutObjectCommandInput[] {
  return s3.commandCalls(PutObjectCommand).map((c) => c.args[0].input);
}

/** The record with its hash recomputed from the content: an edit the hash alone cannot see. */
const rehashed = (record: AuditRecord): AuditRecord => ({ ...record, hash: hashOf(record) });

const lines = (body: unknown): AuditRecord[] =>
  String(body)
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as AuditRecord);

function s3Error(name: string, status: number): S3ServiceException {
  return new S3ServiceException({
    name,
    $fault: status >= 500 ? 'server' : 'client',
    $metadata: { httpStatusCode: status },
    message: `${name} (${status})`,
  });
}

describe('the archive layout', () => {
  it('partitions by the UTC date of the record’s time, and names objects by pipeline, seq range and hash', () => {
    expect(partitionDate('2026-03-01T23:30:00.000Z')).toBe('2026-03-01');
    expect(partitionDate('2026-03-02T01:30:00+02:00')).toBe('2026-03-01');
    expect(partitionDate('yesterday')).toBeUndefined();
    // Date.parse rolls a day past the month's end over into the next month. What matters is that it is one
    // fixed date: `audit verify --archive` finds a record's object by this same function.
    expect(partitionDate('2026-02-30T00:00:00Z')).toBe('2026-03-02');
    expect(partitionDate('2026-02-31T23:59:59Z')).toBe('2026-03-03');
    expect(keySafe('team@payments.api-prod_1')).toBe('team_payments.api-prod_1');
    const records = chain('payments-api', [entry(), entry({ type: 'action' })]);
    const [object] = archiveObjects(records);
    expect(object?.key).toMatch(
      /^records\/date=2026-03-01\/payments-api-000000000001-000000000002-[0-9a-f]{16}\.jsonl$/,
    );
    expect(object?.key.startsWith(RECORDS_PREFIX)).toBe(true);
  });
});

describe('the archive function', () => {
  it('writes one object per date and pipeline, its records in seq order, one canonical JSON line each', async () => {
    s3.on(PutObjectCommand).resolves({});
    const a = chain('payments-api', [
      entry({ time: '2026-03-01T10:00:00.000Z' }),
      entry({ type: 'action', time: '2026-03-01T10:00:01.000Z' }),
      entry({ type: 'resolution', time: '2026-03-02T09:00:00.000Z' }),
    ]);
    const b = chain('billing-api', [entry({ time: '2026-03-01T11:00:00.000Z', outcome: 'APPROVE' })]);
    // Interleaved and out of order, as a batch of a table's stream may be.
    const report = await archiveBatch(eventOf(...inserts([a[1]!, b[0]!, a[2]!, a[0]!])), deps());
    expect(report).toEqual({
      records: 4,
      ignored: 0,
      changed: 0,
      objects: 3,
      written: 3,
      alreadyArchived: 0,
      hashMismatches: 0,
    });
    const byKey = new Map(puts().map((p) => [p.Key ?? '', p]));
    const keys = [...byKey.keys()].sort();
    expect(keys).toEqual([
      expect.stringMatching(
        /^records\/date=2026-03-01\/billing-api-000000000001-000000000001-[0-9a-f]{16}\.jsonl$/,
      ),
      expect.stringMatching(
        /^records\/date=2026-03-01\/payments-api-000000000001-000000000002-[0-9a-f]{16}\.jsonl$/,
      ),
      expect.stringMatching(
        /^records\/date=2026-03-02\/payments-api-000000000003-000000000003-[0-9a-f]{16}\.jsonl$/,
      ),
    ]);
    const day1 = lines(byKey.get(keys[1]!)?.Body);
    expect(day1.map((r) => r.seq)).toEqual([1, 2]);
    expect(lines(byKey.get(keys[2]!)?.Body).map((r) => r.seq)).toEqual([3]);
    for (const input of byKey.values()) {
      expect(input).toMatchObject({
        Bucket: BUCKET,
        ContentType: 'application/x-ndjson',
        IfNoneMatch: '*',
        ChecksumAlgorithm: 'SHA256',
      });
      // Written with the bucket's default retention and encryption: no per-object override.
      expect(input.ObjectLockMode).toBeUndefined();
      expect(input.ObjectLockRetainUntilDate).toBeUndefined();
      expect(input.ServerSideEncryption).toBeUndefined();
      expect(String(input.Body).endsWith('\n')).toBe(true);
    }
  });

  it('round-trips each record exactly, and its line is its canonical form (the hash checks on the archive alone)', async () => {
    s3.on(PutObjectCommand).resolves({});
    const [record] = chain('payments-api', [
      entry({
        type: 'resolution',
        actor: 'arn:aws:sts::123456789012:assumed-role/SecurityEngineer/alice',
        outcome: null,
        image: null,
        summary: null,
        counts: null,
        exceptions: null,
        policy: null,
        vulnerabilities: [],
        violations: [],
        resolution: {
          state: 'SUCCEEDED',
          reviewer: 'arn:aws:sts::123456789012:assumed-role/SecurityEngineer/alice',
          byTollgate: false,
          status: 'Approved',
          summary: 'Accepted: "fix scheduled", see SEC-123 — ünïcödé',
        },
      }),
    ]);
    await archiveBatch(eventOf(...inserts([record!])), deps());
    const body = String(puts()[0]?.Body);
    expect(body).toBe(`${canonical(record)}\n`);
    const [back] = lines(body);
    expect(back).toEqual(record);
    expect(hashOf(back!)).toBe(record?.hash);
  });

  it('ignores every stream record that is neither an audit INSERT nor a change of an audit record, and writes nothing for them', async () => {
    s3.on(PutObjectCommand).resolves({});
    const gateKey = 'GATE#payments-api/exec-1/Deploy/TollgateApproval';
    const [record] = chain('payments-api', [entry()]);
    const done = { ...pendingItem(record!), done: true, [TTL_ATTRIBUTE]: 1_772_445_600 };
    const event = eventOf(
      streamRecord({ pk: gateKey, sk: 'GATE', type: 'gate', state: 'WAITING', version: 1 }),
      streamRecord({ pk: gateKey, sk: 'GATE', type: 'gate', state: 'DECIDED', version: 2 }, 'MODIFY'),
      streamRecord({ pk: gateKey, sk: 'DECISION', type: 'decision', decision: { outcome: 'APPROVE' } }),
      streamRecord({ pk: `SCAN#sha256:${'a'.repeat(64)}`, sk: 'SCAN', type: 'scan', atMs: 1 }),
      streamRecord({ pk: 'RUN#run-1', sk: 'RUN', type: 'run' }, 'REMOVE', TTL_IDENTITY),
      // The audit trail's other items, as the store writes them: a head moves on at every append, a done
      // pending marker is rewritten with the TTL attribute and then removed by it.
      streamRecord(headItem(record!)),
      streamRecord(headItem(record!), 'MODIFY'),
      streamRecord(registryItem('payments-api', record!.time)),
      streamRecord(indexItem('VULN', 'CVE-2024-21538', record!)),
      streamRecord(pendingItem(record!)),
      streamRecord(done, 'MODIFY'),
      streamRecord(done, 'REMOVE', TTL_IDENTITY),
    );
    const d = deps();
    const logged = vi.spyOn(d.logger, 'error');
    const report = await archiveBatch(event, d);
    expect(report).toMatchObject({ records: 0, ignored: 12, changed: 0, objects: 0, written: 0 });
    expect(puts()).toEqual([]);
    expect(logged).not.toHaveBeenCalled();
    expect(auditRecordsOf(eventOf())).toEqual({ records: [], ignored: 0, changed: [] });
  });

  it('counts a MODIFY or REMOVE of an audit record as tampering: logged with who did it, never archived, never a failed batch', async () => {
    s3.on(PutObjectCommand).resolves({});
    const [record, next] = chain('payments-api', [entry(), entry({ type: 'action' })]);
    const item = auditItem(record!);
    // A Put over the record (a gate role could: it may put items), one giving it the TTL attribute, the
    // TTL's deletion then, a DeleteItem, and a Put of another kind of item at its keys.
    const rewritten = { ...item, record: { ...record!, outcome: 'APPROVE' } };
    const expiring = { ...item, [TTL_ATTRIBUTE]: 1_772_359_200 };
    const replaced = { ...item, type: 'gate' };
    const event = eventOf(
      streamRecord(rewritten, 'MODIFY'),
      streamRecord(expiring, 'MODIFY'),
      streamRecord(item, 'REMOVE', TTL_IDENTITY),
      streamRecord(item, 'REMOVE'),
      streamRecord(replaced, 'MODIFY'),
      ...inserts([next!]),
    );
    const d = deps();
    const logged = vi.spyOn(d.logger, 'error');
    const metric = vi.spyOn(d.metrics, 'addMetric');
    const report = await archiveBatch(event, d);
    expect(report).toMatchObject({ records: 1, ignored: 0, changed: 5, written: 1, hashMismatches: 0 });
    // Only the record inserted is archived: a MODIFY's new image is never taken for the record.
    expect(puts()).toHaveLength(1);
    expect(lines(puts()[0]?.Body)).toEqual([next]);
    expect(metric).toHaveBeenCalledWith('ArchiveAuditRecordsChanged', 'Count', 5);
    const keys = { pk: 'AUDIT#payments-api', sk: 'SEQ#000000000001' };
    const changes = logged.mock.calls
      .filter(([message]) => /audit record was modified or removed/.test(String(message)))
      .map(([, details]) => details);
    expect(changes).toEqual([
      expect.objectContaining({ ...keys, eventName: 'MODIFY', newType: 'audit' }),
      expect.objectContaining({ ...keys, eventName: 'MODIFY', newType: 'audit' }),
      expect.objectContaining({ ...keys, eventName: 'REMOVE', userIdentity: TTL_IDENTITY }),
      expect.objectContaining({ ...keys, eventName: 'REMOVE' }),
      expect.objectContaining({ ...keys, eventName: 'MODIFY', newType: 'gate' }),
    ]);
    expect(changes[0]).toMatchObject({ eventID: event.Records[0]?.eventID, approximateTime: 1_772_359_200 });
    expect(changes[3]).not.toHaveProperty('userIdentity');
    // Names the item, never its content.
    expect(JSON.stringify(changes)).not.toContain('CVE-');

    // A batch of nothing but changes writes nothing and does not fail.
    s3.reset();
    const alone = await archiveBatch(
      eventOf(streamRecord(rewritten, 'MODIFY'), streamRecord(item, 'REMOVE')),
      deps(),
    );
    expect(alone).toMatchObject({ records: 0, changed: 2, objects: 0, written: 0 });
    expect(puts()).toEqual([]);
  });

  it('reads the reviewer’s repro of an audit record rewritten in place and removed: two changes, no record', () => {
    const item = {
      pk: { S: 'AUDIT#payments-api' },
      sk: { S: 'SEQ#000000000007' },
      type: { S: 'audit' },
      outcome: { S: 'APPROVE' },
      hash: { S: 'not-the-hash-of-this-content' },
    };
    const keys = { pk: item.pk, sk: item.sk };
    const parsed = auditRecordsOf(
      eventOf(
        { eventID: '1', eventName: 'MODIFY', dynamodb: { Keys: keys, NewImage: item } },
        { eventID: '2', eventName: 'REMOVE', dynamodb: { Keys: keys } },
      ),
    );
    expect(parsed).toEqual({
      records: [],
      ignored: 0,
      changed: [
        {
          eventID: '1',
          eventName: 'MODIFY',
          pk: 'AUDIT#payments-api',
          sk: 'SEQ#000000000007',
          newType: 'audit',
        },
        { eventID: '2', eventName: 'REMOVE', pk: 'AUDIT#payments-api', sk: 'SEQ#000000000007' },
      ],
    });
  });

  it('names objects by their records only: a retried batch, in any order, finds its objects there (412) and writes nothing new', async () => {
    const records = chain('payments-api', [
      entry(),
      entry({ type: 'action' }),
      entry({ type: 'resolution' }),
    ]);
    s3.on(PutObjectCommand).resolves({});
    await archiveBatch(eventOf(...inserts(records)), deps());
    const first = puts();
    s3.reset();
    s3.on(PutObjectCommand).rejects(s3Error('PreconditionFailed', 412));
    const retried = await archiveBatch(
      eventOf(...inserts([...records].reverse()), ...inserts(records)),
      deps(),
    );
    expect(retried).toMatchObject({ records: 3, objects: 1, written: 0, alreadyArchived: 1 });
    expect(puts().map((p) => [p.Key, p.Body])).toEqual(first.map((p) => [p.Key, p.Body]));
    // Other records, another key: the hash in the name is of the records.
    const other = chain('payments-api', [entry({ summary: 'another decision' })]);
    expect(archiveObjects(other)[0]?.key).not.toBe(archiveObjects(records.slice(0, 1))[0]?.key);
  });

  it('throws when a PUT fails for good, so that Lambda retries and bisects the batch; the other objects are still tried', async () => {
    const a = chain('payments-api', [entry()]);
    const b = chain('billing-api', [entry()]);
    s3.on(PutObjectCommand).resolves({});
    s3.on(PutObjectCommand, { Key: archiveObjects(a)[0]?.key }).rejects(s3Error('AccessDenied', 403));
    const d = deps();
    const logged = vi.spyOn(d.logger, 'error');
    await expect(archiveBatch(eventOf(...inserts([...a, ...b])), d)).rejects.toThrow(
      /^archive: 1 of 2 object\(s\) not written: records\/date=2026-03-01\/payments-api-.*AccessDenied/,
    );
    // Access denied is not retried; the other pipeline's object was written.
    expect(puts().map((p) => p.Key?.split('/')[2]?.split('-')[0])).toEqual(
      expect.arrayContaining(['billing', 'payments']),
    );
    expect(puts()).toHaveLength(2);
    expect(logged).toHaveBeenCalledWith(
      expect.stringMatching(/objects not written/),
      expect.objectContaining({ written: 1 }),
    );
  });

  it('retries throttling, a 5xx and a concurrent PUT of the same key (409), then succeeds', async () => {
    const records = chain('payments-api', [entry()]);
    s3.on(PutObjectCommand)
      .rejectsOnce(s3Error('SlowDown', 503))
      .rejectsOnce(s3Error('ConditionalRequestConflict', 409))
      .resolves({});
    const report = await archiveBatch(eventOf(...inserts(records)), deps());
    expect(report.written).toBe(1);
    expect(puts()).toHaveLength(3);
    s3.reset();
    s3.on(PutObjectCommand).rejects(s3Error('InternalError', 500));
    await expect(archiveBatch(eventOf(...inserts(records)), deps())).rejects.toThrow(/InternalError/);
    expect(puts()).toHaveLength(NO_WAIT.attempts);
  });

  it('refuses an audit item that breaks the contract before writing anything, naming it but not its content', async () => {
    s3.on(PutObjectCommand).resolves({});
    const [good] = chain('payments-api', [entry()]);
    const [other] = chain('billing-api', [entry()]);
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ ...auditItem(good!), record: undefined }, /no record map/],
      [{ ...auditItem(good!), pk: 'AUDIT#billing-api' }, /keys .* are not those of record payments-api #1/],
      [{ ...auditItem(good!), sk: 'SEQ#1' }, /keys .* are not those of record/],
      [{ ...auditItem(good!), record: { ...good, time: 'last tuesday' } }, /record\.time/],
      [{ ...auditItem(good!), record: { ...good, hash: 'x' } }, /record\.hash/],
      [{ ...auditItem(good!), record: { ...good, seq: 0 }, sk: `SEQ#${pad(0)}` }, /record\.seq/],
      // Re-hashed, so only the archive reader's own line check (parseArchiveLine) would refuse it: once in
      // the Object-Locked bucket it would fail every later `verify --archive`.
      [
        { ...auditItem(good!), record: rehashed({ ...good!, prevHash: 'not-a-hash' }) },
        /record\.prevHash: expected a SHA-256/,
      ],
      [{ ...auditItem(good!), record: rehashed({ ...good!, prevHash: 'A'.repeat(64) }) }, /record\.prevHash/],
    ];
    for (const [item, message] of cases) {
      const event = eventOf(...inserts([other!]), streamRecord(item));
      const error = await archiveBatch(event, deps()).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MalformedAuditItemError);
      expect((error as Error).message).toMatch(message);
      expect((error as Error).message).toMatch(/stream record event-\d+ \(pk AUDIT#/);
      expect((error as Error).message).not.toContain('CVE-');
    }
    expect(puts()).toEqual([]);
  });

  it('archives a record whose hash does not match its content as it is, and reports it', async () => {
    s3.on(PutObjectCommand).resolves({});
    const [record] = chain('payments-api', [entry()]);
    const edited = { ...record!, summary: 'edited after the fact' };
    const d = deps();
    const logged = vi.spyOn(d.logger, 'error');
    const report = await archiveBatch(eventOf(streamRecord(auditItem(edited))), d);
    expect(report).toMatchObject({ written: 1, hashMismatches: 1 });
    expect(lines(puts()[0]?.Body)).toEqual([edited]);
    expect(logged).toHaveBeenCalledWith(expect.stringMatching(/hash is not that of its content/), {
      pipeline: 'payments-api',
      seq: 1,
    });
  });

  it('runs as a Lambda handler (middy, Powertools) and returns its report', async () => {
    s3.on(PutObjectCommand).resolves({});
    const handler = archiveHandler(deps());
    const context = {
      functionName: 'archive',
      functionVersion: '$LATEST',
      invokedFunctionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:archive',
      memoryLimitInMB: '512',
      awsRequestId: 'c6af9ac6-7b61-11e6-9a41-93e812345678',
      logGroupName: '/aws/lambda/archive',
      logStreamName: 'test',
      getRemainingTimeInMillis: () => 60_000,
    } as unknown as Context;
    const report = await handler(eventOf(...inserts(chain('payments-api', [entry()]))), context);
    expect(report).toMatchObject({ records: 1, written: 1 });
  });
});

describe('the archive function on S3’s wire protocol (a local HTTP server standing in for S3)', () => {
  interface Seen {
    readonly method: string | undefined;
    readonly url: string | undefined;
    readonly headers: IncomingHttpHeaders;
    readonly body: string;
  }
  const xmlError = (code: string) =>
    `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${code}</Message>` +
    '<RequestId>4442587FB7D0A2F9</RequestId><HostId>host</HostId></Error>';

  async function withServer(
    answers: { status: number; code?: string }[],
    run: (client: S3Client) => Promise<void>,
  ): Promise<Seen[]> {
    const seen: Seen[] = [];
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        seen.push({
          method: req.method,
          url: req.url,
          headers: req.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        });
        const answer = answers.shift() ?? { status: 200 };
        res.writeHead(answer.status, {
          'content-type': 'application/xml',
          'x-amz-request-id': '4442587FB7D0A2F9',
          ...(answer.status === 200 ? { etag: '"d41d8cd98f00b204e9800998ecf8427e"' } : {}),
        });
        res.end(answer.code ? xmlError(answer.code) : '');
      });
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    const { port } = server.address() as AddressInfo;
    const wire = new S3Client({
      region: 'eu-west-1',
      endpoint: `http://127.0.0.1:${port}`,
      forcePathStyle: true,
      credentials: { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'secret' },
      maxAttempts: 1,
    });
    try {
      await run(wire);
    } finally {
      wire.destroy();
      await new Promise((done) => server.close(done));
    }
    return seen;
  }

  it('sends a conditional PUT (If-None-Match: *) with a SHA-256 checksum, and reads 412 as already there', async () => {
    const records = chain('payments-api', [entry()]);
    const [object] = archiveObjects(records);
    let report: Awaited<ReturnType<typeof archiveBatch>> | undefined;
    const seen = await withServer(
      [{ status: 200 }, { status: 412, code: 'PreconditionFailed' }],
      async (wire) => {
        await archiveBatch(eventOf(...inserts(records)), { ...deps(), s3: wire });
        report = await archiveBatch(eventOf(...inserts(records)), { ...deps(), s3: wire });
      },
    );
    expect(seen).toHaveLength(2);
    const [put] = seen;
    expect(put?.method).toBe('PUT');
    expect(decodeURIComponent(put?.url ?? '')).toMatch(new RegExp(`^/${BUCKET}/${object?.key}(\\?|$)`));
    expect(put?.headers['if-none-match']).toBe('*');
    expect(put?.headers['content-type']).toBe('application/x-ndjson');
    // Object Lock wants an integrity header on every PUT: the SHA-256 of the body, base64.
    const sha = createHash('sha256')
      .update(object?.body ?? '')
      .digest('base64');
    const sent = put?.headers['x-amz-checksum-sha256'] ?? put?.body.match(/x-amz-checksum-sha256:(\S+)/)?.[1];
    expect(sent).toBe(sha);
    expect(put?.headers['x-amz-object-lock-mode']).toBeUndefined();
    expect(put?.headers['x-amz-server-side-encryption']).toBeUndefined();
    expect(report).toMatchObject({ written: 0, alreadyArchived: 1 });
  });

  it('retries a 409 (a concurrent PUT of the key) and fails the batch on a 403', async () => {
    const records = chain('payments-api', [entry()]);
    const seen = await withServer([{ status: 409, code: 'ConditionalRequestConflict' }], async (wire) => {
      const report = await archiveBatch(eventOf(...inserts(records)), { ...deps(), s3: wire });
      expect(report.written).toBe(1);
    });
    expect(seen).toHaveLength(2);
    const denied = await withServer([{ status: 403, code: 'AccessDenied' }], async (wire) => {
      await expect(archiveBatch(eventOf(...inserts(records)), { ...deps(), s3: wire })).rejects.toThrow(
        /AccessDenied/,
      );
    });
    expect(denied).toHaveLength(1);
  });
});
