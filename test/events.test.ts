import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { entrySize, PutEventsError } from '../adapters/aws/eventbridge.js';
import { EVENTS_PER_SEND, GateClosing } from '../shared/gate/closing.js';
import { exampleEscalationInput } from '../shared/gate/escalation.example.js';
import {
  boundedDecisionDetail,
  DecisionEventDetail,
  decisionEvent,
  EVENT_DETAIL_SCHEMAS,
  eventJsonSchemaText,
  eventSchemaFile,
  GateClosedEventDetail,
  GateStateEventDetail,
  gateClosedEvent,
  gateStateEvent,
  pipelineArn,
} from '../shared/gate/events.js';
import { DETAIL_LIMIT, type Gate } from '../shared/gate/model.js';
import type { EventsPort, StorePort, TollgateEvent, TollgateEventType } from '../shared/gate/ports.js';

const TOKEN = '1a2b3c4d-573f-4ea7-a67e-0123456789ab';
const { gate: decided, decision } = exampleEscalationInput();
const ACCOUNT = '123456789012';
const REGION = 'eu-west-1';

const closed: Gate = {
  ...decided,
  state: 'CLOSED',
  version: 5,
  approvalResult: undefined,
  notifications: 1,
  closure: { state: 'SUCCEEDED', at: '2026-11-25T12:20:00.000Z' },
  reviewer: {
    identity: 'arn:aws:sts::123456789012:assumed-role/SecurityEngineer/jane.doe@example.com',
    type: 'AssumedRole',
    status: 'Approved',
    summary: 'CVE-2023-44487 not reachable: no HTTP/2 listener; upgrade tracked in SEC-431',
    at: '2026-11-25T12:19:58.000Z',
    tollgate: false,
  },
  updatedAt: '2026-11-25T12:20:01.000Z',
};

function allEvents(): TollgateEvent[] {
  return [
    decisionEvent(decided, decision, REGION, ACCOUNT),
    gateStateEvent(decided, 'WAITING', REGION, ACCOUNT),
    gateStateEvent({ ...decided, state: 'WAITING', outcome: undefined }, undefined, REGION, ACCOUNT),
    gateStateEvent(
      { ...decided, state: 'STALE', staleReason: 'the execution moved on' },
      'WAITING',
      REGION,
      ACCOUNT,
    ),
    gateClosedEvent(closed, REGION, ACCOUNT),
  ];
}

describe('event details', () => {
  it('validate against their zod schemas and name their detail-type', () => {
    const events = allEvents();
    expect(events.map((e) => e.detailType)).toEqual([
      'Tollgate Decision',
      'Tollgate Gate State Change',
      'Tollgate Gate State Change',
      'Tollgate Gate State Change',
      'Tollgate Gate Closed',
    ]);
    for (const e of events) {
      expect(EVENT_DETAIL_SCHEMAS[e.detailType].safeParse(e.detail).success, e.detailType).toBe(true);
      expect(e.detail.version).toBe('1');
    }
  });

  it('never carry the approval token, its hash, or whole findings', () => {
    const gate: Gate = { ...decided, tokenHash: 'c0ffee'.repeat(10) };
    const events = [
      decisionEvent(gate, decision, REGION, ACCOUNT),
      gateStateEvent(gate, 'WAITING', REGION, ACCOUNT),
      gateClosedEvent({ ...closed, tokenHash: gate.tokenHash }, REGION, ACCOUNT),
      // Even a gate object carrying extra fields (a token a careless caller spread in) cannot leak through.
      gateStateEvent({ ...gate, token: TOKEN } as Gate, 'WAITING', REGION, ACCOUNT),
    ];
    for (const e of events) {
      const serialized = JSON.stringify(e);
      expect(serialized).not.toContain(gate.tokenHash);
      expect(serialized).not.toContain(TOKEN);
      expect(serialized).not.toMatch(/token/i);
      expect(serialized).not.toContain('installedVersion');
      expect(serialized).not.toContain('libnghttp2');
    }
  });

  it('name the pipeline ARN when the account is known', () => {
    const arn = 'arn:aws:codepipeline:eu-west-1:123456789012:payments-api';
    for (const e of allEvents()) expect(e.resources).toEqual([arn]);
    expect(gateStateEvent(decided, 'WAITING', REGION, undefined).resources).toEqual([]);
    expect(gateStateEvent(decided, 'WAITING', REGION, '').resources).toEqual([]);
    expect(pipelineArn('p', 'cn-north-1', ACCOUNT)).toBe('arn:aws-cn:codepipeline:cn-north-1:123456789012:p');
    expect(pipelineArn('p', 'us-gov-west-1', ACCOUNT)).toBe(
      'arn:aws-us-gov:codepipeline:us-gov-west-1:123456789012:p',
    );
  });

  it('reject a key the schema does not know, so a builder cannot drift from the published schema', () => {
    const detail = decisionEvent(decided, decision, REGION, ACCOUNT).detail;
    expect(DecisionEventDetail.safeParse({ ...detail, tokenHash: 'x' }).success).toBe(false);
    const state = gateStateEvent(decided, 'WAITING', REGION, ACCOUNT).detail;
    expect(GateStateEventDetail.safeParse({ ...state, extra: 1 }).success).toBe(false);
    const { reviewer: _, ...noReviewer } = gateClosedEvent(closed, REGION, ACCOUNT).detail;
    expect(GateClosedEventDetail.safeParse(noReviewer).success).toBe(false);
  });
});

describe('Tollgate Decision', () => {
  it('carries the outcome, policy, image, counts and the violated rules by id', () => {
    const detail = decisionEvent(decided, decision, REGION, ACCOUNT).detail as DecisionEventDetail;
    expect(detail).toMatchObject({
      pipeline: 'payments-api',
      executionId: decision.key.executionId,
      stage: 'SecurityGate',
      action: 'TollgateApproval',
      outcome: 'ESCALATE',
      mode: 'enforce',
      wouldBe: null,
      summary: decision.record.summary,
      policy: decision.record.policy,
      image: {
        repository: 'payments/api',
        digest: decision.image!.digest,
        tags: ['1.4.2', 'release-2026-11-25'],
      },
      counts: decision.record.counts,
      trigger: 'scan-finished',
      decidedAt: decision.decidedAt,
      latencyMs: 192_000,
    });
    expect(detail.violations[0]).toEqual({
      rule: 'fixable-high',
      action: 'escalate',
      count: 2,
      allow: 0,
      vulnerabilityIds: ['CVE-2023-44487', 'CVE-2024-6119'],
      moreVulnerabilityIds: 0,
    });
    expect(detail.exceptions.expiringSoon).toEqual(['EXC-2026-001']);
  });

  it('lists at most DETAIL_LIMIT ids per rule and counts the rest', () => {
    const ids = Array.from({ length: 500 }, (_, i) => `CVE-2026-${String(10000 + i)}`);
    const record = {
      ...decision.record,
      violations: [{ rule: 'no-critical', action: 'reject' as const, allow: 0, count: 500, findings: ids }],
    };
    const detail = decisionEvent(decided, { ...decision, record }, REGION, ACCOUNT)
      .detail as DecisionEventDetail;
    expect(detail.violations[0]!.vulnerabilityIds).toEqual(ids.slice(0, DETAIL_LIMIT));
    expect(detail.violations[0]!.moreVulnerabilityIds).toBe(500 - DETAIL_LIMIT);
  });
});

describe("Tollgate Decision within EventBridge's 256 KB", () => {
  type RecordViolation = (typeof decision.record.violations)[number];
  const ids = (n: number, prefix: string) =>
    Array.from({ length: n }, (_, i) => `CVE-2026-${prefix}${String(i).padStart(5, '0')}`);
  const rule = (id: string, action: RecordViolation['action']): RecordViolation => ({
    rule: id,
    action,
    count: 20,
    allow: 0,
    findings: ids(20, id.slice(-3)),
  });
  /** A policy of thousands of rules, all violated: the decision can be stored (up to 400 KB), not sent. */
  function huge() {
    // The one reject rule that sets the outcome comes last in rule order: the first thing a cut from the end drops.
    const violations = [
      ...Array.from({ length: 2_999 }, (_, i) =>
        rule(`escalate-rule-${String(i).padStart(4, '0')}`, 'escalate'),
      ),
      rule('no-critical', 'reject'),
    ];
    const warnings = Array.from({ length: 500 }, (_, i) =>
      rule(`warn-rule-${String(i).padStart(4, '0')}`, 'warn'),
    );
    const exc = (p: string) => Array.from({ length: 2_000 }, (_, i) => `${p}-${String(i).padStart(5, '0')}`);
    const record = {
      ...decision.record,
      outcome: 'REJECT' as const,
      violations,
      warnings,
      exceptions: {
        ...decision.record.exceptions,
        applied: exc('EXC-A'),
        expiringSoon: exc('EXC-S'),
        expired: exc('EXC-E'),
        revoked: [],
      },
    };
    return { ...decision, record };
  }

  it('keeps a whole detail whole, saying nothing was left out', () => {
    const detail = decisionEvent(decided, decision, REGION, ACCOUNT).detail as DecisionEventDetail;
    expect(detail.omitted).toBeNull();
    expect(detail.violations[0]!.vulnerabilityIds).not.toEqual([]);
  });

  it('cuts a decision of thousands of violated rules to one entry EventBridge takes, keeping the cause', () => {
    const big = huge();
    expect(Buffer.byteLength(JSON.stringify(big.record))).toBeGreaterThan(300 * 1024);
    const e = decisionEvent(decided, big, REGION, ACCOUNT);
    const detail = e.detail as DecisionEventDetail;
    expect(DecisionEventDetail.safeParse(detail).success).toBe(true);
    const entry = {
      Source: 'tollgate',
      DetailType: e.detailType,
      Detail: JSON.stringify(detail),
      Resources: [...e.resources],
    };
    expect(entrySize(entry)).toBeLessThanOrEqual(256 * 1024);
    expect(entrySize(entry)).toBeGreaterThan(200 * 1024);
    // Ids, warnings and exceptions gave way before any violation; the rule that set the outcome stayed.
    expect(detail.warnings).toEqual([]);
    expect(Object.values(detail.exceptions).flat()).toEqual([]);
    expect(detail.omitted).toEqual({
      violations: 3_000 - detail.violations.length,
      warnings: 500,
      exceptions: 6_000,
    });
    expect(detail.violations.length).toBeGreaterThan(100);
    expect(detail.violations.map((v) => v.rule)).toContain('no-critical');
    expect(detail.violations.at(-1)).toEqual({
      rule: 'no-critical',
      action: 'reject',
      count: 20,
      allow: 0,
      vulnerabilityIds: [],
      moreVulnerabilityIds: 20,
    });
    // The others kept are the first in rule order, in rule order.
    const kept = detail.violations.slice(0, -1).map((v) => v.rule);
    expect(kept).toEqual(big.record.violations.slice(0, kept.length).map((v) => v.rule));
    expect(detail).toMatchObject({
      outcome: 'REJECT',
      summary: big.record.summary,
      counts: big.record.counts,
    });
  });

  it("gives way least telling first: warnings' ids, violations' ids, warnings, exceptions, violations", () => {
    const big = huge();
    const whole = decisionEvent(decided, big, REGION, ACCOUNT, Number.POSITIVE_INFINITY)
      .detail as DecisionEventDetail;
    const size = (d: DecisionEventDetail) => Buffer.byteLength(JSON.stringify(d));
    const at = (budget: number) => boundedDecisionDetail(whole, budget);
    const noWarningIds = at(size(whole) - 1);
    expect(noWarningIds.warnings.every((w) => w.vulnerabilityIds.length === 0)).toBe(true);
    expect(noWarningIds.warnings[0]!.moreVulnerabilityIds).toBe(20);
    expect(noWarningIds.violations[0]!.vulnerabilityIds).toHaveLength(20);
    expect(noWarningIds.omitted).toEqual({ violations: 0, warnings: 0, exceptions: 0 });

    const noIds = at(size(noWarningIds) - 1);
    expect(noIds.violations.every((v) => v.vulnerabilityIds.length === 0)).toBe(true);
    expect(noIds.warnings).toHaveLength(500);

    const fewerWarnings = at(size(noIds) - 1);
    expect(fewerWarnings.warnings).toHaveLength(499);
    expect(fewerWarnings.omitted).toEqual({ violations: 0, warnings: 1, exceptions: 0 });

    const noWarnings: DecisionEventDetail = {
      ...noIds,
      warnings: [],
      omitted: { violations: 0, warnings: 500, exceptions: 0 },
    };
    expect(at(size(noWarnings))).toEqual(noWarnings);
    const fewerExceptions = at(size(noWarnings) - 1);
    expect(fewerExceptions.warnings).toEqual([]);
    // One id fewer in each list that had one to give.
    expect(fewerExceptions.exceptions.applied).toHaveLength(1_999);
    expect(fewerExceptions.omitted).toEqual({ violations: 0, warnings: 500, exceptions: 3 });
    expect(fewerExceptions.violations).toHaveLength(3_000);

    const noExceptions: DecisionEventDetail = {
      ...noWarnings,
      exceptions: { applied: [], expiringSoon: [], expired: [], revoked: [] },
      omitted: { violations: 0, warnings: 500, exceptions: 6_000 },
    };
    expect(at(size(noExceptions))).toEqual(noExceptions);
    const bare = at(size(noExceptions) - 1);
    expect(bare.violations).toHaveLength(2_999);
    expect(bare.violations.map((v) => v.rule)).toContain('no-critical');
    expect(bare.omitted).toEqual({ violations: 1, warnings: 500, exceptions: 6_000 });
    for (const d of [noWarningIds, noIds, fewerWarnings, noWarnings, fewerExceptions, noExceptions, bare])
      expect(DecisionEventDetail.safeParse(d).success).toBe(true);
  });

  it("cuts the outcome's own violations only when the others alone do not fit, an implicit one last of all", () => {
    // 3,000 rules that all reject, and the scan that could not be read (implicit, reject) last in the record.
    const big = huge();
    const record = {
      ...big.record,
      violations: [
        ...big.record.violations.map((v) => ({ ...v, action: 'reject' as const })),
        { ...rule('scan-incomplete', 'reject'), findings: [] },
      ],
    };
    const detail = decisionEvent(decided, { ...big, record }, REGION, ACCOUNT).detail as DecisionEventDetail;
    expect(detail.omitted!.violations).toBeGreaterThan(0);
    expect(detail.violations.at(-1)?.rule).toBe('scan-incomplete');
    expect(detail.violations.length + detail.omitted!.violations).toBe(3_001);
  });

  it('returns a detail that cannot fit as cut as it gets, for the adapter to refuse by name', () => {
    const detail = boundedDecisionDetail(
      decisionEvent(decided, huge(), REGION, ACCOUNT).detail as DecisionEventDetail,
      100,
    );
    expect(detail.violations.map((v) => v.rule)).toEqual([]);
    expect(detail.omitted).toEqual({ violations: 3_000, warnings: 500, exceptions: 6_000 });
  });
});

describe('Tollgate Gate State Change', () => {
  it('says the state, the previous one (null for a new gate) and the gate version', () => {
    const created = gateStateEvent({ ...decided, state: 'WAITING', version: 1 }, undefined, REGION, ACCOUNT);
    expect(created.detail).toMatchObject({ state: 'WAITING', previousState: null, gateVersion: 1 });
    const stale = gateStateEvent(
      { ...decided, state: 'STALE', staleReason: 'the execution moved on' },
      'DECIDED',
      REGION,
      ACCOUNT,
    );
    expect(stale.detail).toMatchObject({
      state: 'STALE',
      previousState: 'DECIDED',
      staleReason: 'the execution moved on',
      outcome: 'ESCALATE',
      at: decided.updatedAt,
    });
    const noImage = gateStateEvent(
      { ...decided, image: undefined, imageProblem: 'CustomData names no image' },
      'WAITING',
      REGION,
      ACCOUNT,
    );
    expect(noImage.detail).toMatchObject({ image: null, imageProblem: 'CustomData names no image' });
  });
});

describe('Tollgate Gate Closed', () => {
  it('says how the approval ended and who resolved it', () => {
    const detail = gateClosedEvent(closed, REGION, ACCOUNT).detail as GateClosedEventDetail;
    expect(detail).toMatchObject({
      state: 'CLOSED',
      closure: { state: 'SUCCEEDED', at: '2026-11-25T12:20:00.000Z' },
      reviewer: {
        identity: closed.reviewer!.identity,
        type: 'AssumedRole',
        status: 'Approved',
        summary: closed.reviewer!.summary,
        tollgate: false,
      },
      outcome: 'ESCALATE',
      approvalResult: null,
      durationMs: 20 * 60_000,
    });
  });

  it("carries the reviewer's source identity and says the reviewer came from CloudTrail's record", () => {
    // A shared role whose session name the caller chose: the source identity says who it really was.
    const reviewer = { ...closed.reviewer!, sourceIdentity: 'jane.doe@example.com' };
    const detail = gateClosedEvent({ ...closed, reviewer }, REGION, ACCOUNT).detail as GateClosedEventDetail;
    expect(detail.reviewer).toMatchObject({
      identity: closed.reviewer!.identity,
      sourceIdentity: 'jane.doe@example.com',
      source: 'cloudtrail',
    });
    // Without one it is null, not absent: every listed field is always there.
    expect(gateClosedEvent(closed, REGION, ACCOUNT).detail).toMatchObject({
      reviewer: { sourceIdentity: null, source: 'cloudtrail' },
    });
  });

  it("says when the reviewer was read from ListActionExecutions, CloudTrail's record never having come", () => {
    const reviewer = {
      identity: 'arn:aws:sts::123456789012:assumed-role/SecurityEngineer/jane.doe@example.com',
      type: undefined,
      status: 'Approved',
      summary: undefined,
      at: '2026-11-25T12:19:58.000Z',
      tollgate: false,
      source: 'listing' as const,
    };
    const detail = gateClosedEvent({ ...closed, reviewer }, REGION, ACCOUNT).detail as GateClosedEventDetail;
    expect(detail).toMatchObject({
      reviewer: { identity: reviewer.identity, type: null, sourceIdentity: null, source: 'listing' },
    });
    expect(GateClosedEventDetail.safeParse(detail).success).toBe(true);
    expect(
      GateClosedEventDetail.safeParse({ ...detail, reviewer: { ...detail.reviewer, source: 'sweep' } })
        .success,
    ).toBe(false);
  });

  it('does not throw for a gate without closure or reviewer', () => {
    const detail = gateClosedEvent({ ...decided, closure: undefined }, REGION, ACCOUNT).detail;
    expect(detail).toMatchObject({ closure: null, reviewer: null, durationMs: null });
  });
});

describe('schema/events/*.schema.json', () => {
  const types = Object.keys(EVENT_DETAIL_SCHEMAS) as TollgateEventType[];
  const ajv = new Ajv2020({ allErrors: true, strict: false });

  it.each(types)(
    '%s is what the zod schema generates (run `npm run schema:events` after a change)',
    (type) => {
      const file = eventSchemaFile(type);
      expect(file).toMatch(/^schema\/events\/tollgate-[a-z-]+\.schema\.json$/);
      expect(readFileSync(new URL(`../${file}`, import.meta.url), 'utf8')).toBe(eventJsonSchemaText(type));
    },
  );

  it('accept the events the builders make', () => {
    const validators = new Map(
      types.map((type) => {
        const text = readFileSync(new URL(`../${eventSchemaFile(type)}`, import.meta.url), 'utf8');
        return [type, ajv.compile(JSON.parse(text))] as const;
      }),
    );
    for (const e of allEvents()) {
      const validate = validators.get(e.detailType)!;
      expect(validate(e.detail), JSON.stringify(validate.errors)).toBe(true);
      // Open to a field a later release of version 1 adds, as docs/events.md promises subscribers...
      expect(validate({ ...e.detail, addedLater: 'x' }), JSON.stringify(validate.errors)).toBe(true);
      // ...never to a listed field missing or of another type.
      const { version: _, ...withoutVersion } = e.detail as Record<string, unknown>;
      expect(validate(withoutVersion)).toBe(false);
      expect(validate({ ...e.detail, version: 1 })).toBe(false);
    }
  });
});

describe('docs/events.md', () => {
  it('documents every detail field', () => {
    const doc = readFileSync(new URL('../docs/events.md', import.meta.url), 'utf8');
    for (const [type, schema] of Object.entries(EVENT_DETAIL_SCHEMAS)) {
      expect(doc).toContain(`## ${type}`);
      for (const field of Object.keys(schema.shape))
        expect(doc, `${type}: ${field}`).toContain(`\`${field}\``);
    }
  });
});

describe('publishing', () => {
  class Outbox extends GateClosing {
    add(events: readonly TollgateEvent[]): void {
      this.publish(...events.map((e) => () => e));
    }
    addFailing(builders: number): void {
      this.publish(
        ...Array.from({ length: builders }, () => () => {
          throw new Error('a detail that does not fit its schema');
        }),
      );
    }
  }
  const setup = (publish: EventsPort['publish']) => {
    const counted: Array<[string, number | undefined]> = [];
    const warned: Array<Record<string, unknown> | undefined> = [];
    const closing = new Outbox({
      events: { publish },
      store: {} as StorePort,
      clock: { now: () => new Date('2026-11-25T12:00:00Z') },
      log: { debug() {}, info() {}, warn: (_, fields) => void warned.push(fields), error() {} },
      metrics: { decision() {}, gatesWaiting() {}, count: (name, value) => void counted.push([name, value]) },
      config: { region: REGION, account: ACCOUNT, ownIdentities: [] },
    });
    return { closing, counted, warned };
  };

  it('counts each event a failed publish lost, not one per flush', async () => {
    const events = allEvents();
    const lost = events.slice(0, 3).map((e) => ({
      detailType: e.detailType,
      resources: e.resources,
      gate: 'payments-api/7c0e5a1d/SecurityGate/TollgateApproval',
      errorCode: 'AccessDeniedException',
      errorMessage: undefined,
    }));
    const { closing, counted, warned } = setup(async () => {
      throw new PutEventsError(lost, events.length);
    });
    closing.add(events);
    await closing.flush();
    expect(counted).toEqual([['EventPublishFailures', 3]]);
    // The gates it names are logged as gate keys, each once: their logs are found by gate.
    expect(warned).toEqual([
      expect.objectContaining({ gates: [{ gate: 'payments-api/7c0e5a1d/SecurityGate/TollgateApproval' }] }),
    ]);
  });

  it('counts every event lost when the error is not a PublishFailure, whatever it carries', async () => {
    const events = allEvents();
    // An SDK error with a field of the same name says nothing of which events went through.
    const { closing, counted, warned } = setup(async () => {
      throw Object.assign(new Error('socket hang up'), { failures: [{ detailType: 'x', gate: 'a/b/c/d' }] });
    });
    closing.add(events);
    await closing.flush();
    expect(counted).toEqual([['EventPublishFailures', events.length]]);
    expect(warned).toEqual([expect.not.objectContaining({ gates: expect.anything() })]);
  });

  it('counts each event whose building failed, and goes on with the others', async () => {
    const { closing, counted } = setup(async () => undefined);
    closing.addFailing(2);
    expect(counted).toEqual([
      ['EventPublishFailures', 1],
      ['EventPublishFailures', 1],
    ]);
  });

  it('sends every EVENTS_PER_SEND events as they are built, not only when the invocation ends', async () => {
    // A sweep through many gates that Lambda ends at its timeout lost every event it had built, uncounted.
    const sent: number[] = [];
    const { closing } = setup(async (events) => void sent.push(events.length));
    const one = allEvents()[0]!;
    for (let i = 0; i < 2 * EVENTS_PER_SEND + 5; i++) closing.add([one]);
    expect(sent).toEqual([EVENTS_PER_SEND, EVENTS_PER_SEND]);
    await closing.flush();
    expect(sent).toEqual([EVENTS_PER_SEND, EVENTS_PER_SEND, 5]);
    await closing.flush();
    expect(sent).toHaveLength(3);
  });

  it('counts every event given when the error does not say which were lost', async () => {
    const { closing, counted } = setup(async () => {
      throw new Error('socket hang up');
    });
    closing.add(allEvents());
    await closing.flush();
    expect(counted).toEqual([['EventPublishFailures', allEvents().length]]);
  });
});
