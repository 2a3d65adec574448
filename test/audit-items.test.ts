import { describe, expect, it } from 'vitest';
import { recordDamage } from '../adapters/dynamodb/audit-damage.js';
import {
  auditRecordItem,
  auditSortKey,
  dayOf,
  headItem,
  indexKind,
  PARTITION_KEY_BYTES,
  pendingItem,
  registryItem,
  transactionalIndexItems,
  vulnerabilityItems,
} from '../adapters/dynamodb/audit-items.js';
import { chainRecord } from '../shared/audit/chain.js';
import { type AuditRecord, MAX_REVIEWER_NAMES } from '../shared/audit/record.js';

/*
 * The audit items' keys, as the code that picks out index writes by key (the benchmark, fault injection,
 * the tests) sees them: a value too long for a key is keyed by its hash, and is the same kind of item.
 */

const LONG = `CVE-${'9'.repeat(PARTITION_KEY_BYTES)}`;

function decision(vulnerabilities: readonly string[]): AuditRecord {
  return chainRecord(
    {
      type: 'decision',
      time: '2026-11-25T12:00:00.000Z',
      actor: 'tollgate',
      gate: { pipeline: 'orders', executionId: 'exec-1', stage: 'Gate', action: 'TollgateApproval' },
      image: { repository: 'payments/api', digest: `sha256:${'a'.repeat(64)}`, tags: ['1.0.0'] },
      outcome: 'ESCALATE',
      summary: 'ESCALATE orders 1',
      violations: [],
      warnings: [],
      exceptions: null,
      counts: null,
      policy: null,
      vulnerabilities,
      vulnerabilitiesTruncated: false,
      action: null,
      resolution: {
        state: 'SUCCEEDED',
        reviewer: `arn:aws:sts::111111111111:assumed-role/SecurityEngineer/${'b'.repeat(PARTITION_KEY_BYTES)}`,
        byTollgate: false,
        status: 'Approved',
        summary: 'ok',
      },
    },
    'orders',
    undefined,
  );
}

describe('indexKind', () => {
  const record = decision(['CVE-2026-1000', LONG]);

  it('knows a VULN# item by its key, plain or hashed', () => {
    const [plain, hashed] = vulnerabilityItems(record);
    expect(plain!.pk).toBe('VULN#CVE-2026-1000');
    expect(hashed!.pk).toMatch(/^VULN-SHA256#[0-9a-f]{64}$/);
    expect(indexKind(plain!.pk)).toBe('VULN');
    expect(indexKind(hashed!.pk)).toBe('VULN');
  });

  it('knows the REPO# and REVIEWER# items too, hashed ones included', () => {
    const pks = transactionalIndexItems(record).map((i) => i.pk);
    expect(pks.some((pk) => String(pk).startsWith('REVIEWER-SHA256#'))).toBe(true);
    expect(pks.map(indexKind)).toEqual(['REPO', ...pks.slice(1).map(() => 'REVIEWER')]);
  });

  it('is undefined for the record, head, registry and pending marker, and for what is no key', () => {
    for (const item of [
      auditRecordItem(record),
      headItem(record),
      registryItem('orders', record.time),
      pendingItem(record),
    ])
      expect(indexKind(item.pk), String(item.pk)).toBeUndefined();
    for (const pk of [undefined, 42, '', 'VULN', 'VULN-SHA256', 'XVULN#CVE-1', 'VULN-SHA1#ab'])
      expect(indexKind(pk), String(pk)).toBeUndefined();
  });
});

describe('the REVIEWER# items of a resolution', () => {
  it('are the identity and at most MAX_REVIEWER_NAMES short names, however deep its IAM path', () => {
    // An IAM path may run to 512 characters: two hundred segments would be two hundred items, and a
    // transaction over 100 actions that fails the same way on every retry.
    const path = Array.from({ length: 200 }, (_, i) => `p${i}`).join('/');
    const deep = decision([]);
    const record = {
      ...deep,
      resolution: { ...deep.resolution!, reviewer: `arn:aws:iam::111111111111:user/${path}/bob` },
    };
    const reviewers = transactionalIndexItems(record).filter((i) => indexKind(i.pk) === 'REVIEWER');
    expect(reviewers).toHaveLength(1 + MAX_REVIEWER_NAMES);
    expect(reviewers.map((i) => i.pk)).toContain('REVIEWER#bob');
  });
});

describe('a record read back damaged (edited by hand in the table)', () => {
  const record = decision(['CVE-2026-1000']);
  /** The record with `field` of it (a path) set to `value`, or removed for undefined. */
  function edited(path: string, value: unknown): AuditRecord {
    const copy = structuredClone(record) as unknown as Record<string, unknown>;
    const [top, inner] = path.split('.') as [string, string | undefined];
    const target = inner === undefined ? copy : (copy[top] as Record<string, unknown>);
    const key = inner ?? top;
    if (value === undefined) delete target[key];
    else target[key] = value;
    return copy as unknown as AuditRecord;
  }

  it('its items are still built, from a time that is no time, no time at all, or not text', () => {
    for (const time of ['yesterday', undefined, 42, { at: 'noon' }]) {
      const r = { ...record, time: time as string };
      const item = auditRecordItem(r);
      expect(typeof item.auditDay, String(time)).toBe('string');
      expect(typeof item.auditSk, String(time)).toBe('string');
      expect(() => [
        dayOf(r.time),
        auditSortKey(r),
        transactionalIndexItems(r),
        vulnerabilityItems(r),
      ]).not.toThrow();
    }
  });

  it('recordDamage: nothing for a whole record; else the first field that is not as written, what was expected and what came', () => {
    expect(recordDamage(record)).toBeUndefined();
    // Null where a record may have none: the image, the policy, an action or resolution of another kind.
    expect(
      recordDamage({ ...record, image: null, policy: null, action: null, resolution: null }),
    ).toBeUndefined();
    expect(recordDamage(edited('time', 'yesterday'))).toEqual({
      field: 'time',
      expected: 'an ISO-8601 time',
      got: '"yesterday"',
    });
    expect(recordDamage(edited('time', undefined))).toMatchObject({ field: 'time', got: 'nothing' });
    expect(recordDamage(edited('time', 1_700_000_000_000))).toMatchObject({
      field: 'time',
      got: '1700000000000',
    });
    expect(recordDamage(edited('gate', undefined))).toMatchObject({ field: 'gate', got: 'nothing' });
    expect(recordDamage(edited('gate.executionId', 7))).toMatchObject({
      field: 'gate.executionId',
      got: '7',
    });
    expect(recordDamage(edited('image.tags', undefined))).toMatchObject({ field: 'image.tags' });
    expect(recordDamage(edited('vulnerabilities', 'CVE-2026-1000'))).toMatchObject({
      field: 'vulnerabilities',
      expected: 'a list of ids',
    });
    expect(recordDamage(edited('violations', [{ rule: 'no-critical' }]))).toMatchObject({
      field: 'violations',
    });
    expect(recordDamage(edited('resolution.summary', ['ok']))).toMatchObject({ field: 'resolution.summary' });
    expect(recordDamage(edited('hash', undefined))).toMatchObject({ field: 'hash' });
    expect(recordDamage('a record')).toEqual({ field: '(the record)', expected: 'a map', got: '"a record"' });
    // A long value is cut, to stay one line of an error.
    expect(recordDamage(edited('summary', { long: 'x'.repeat(200) }))?.got).toHaveLength(80);
  });
});
