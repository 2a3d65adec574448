import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type EventPattern,
  type FieldFilter,
  type PatternConfig,
  type RuleName,
  rulePatterns,
} from '../infra/patterns.js';
import { ROOT } from './helpers.js';

/*
 * Every rule's pattern, as synthesised, against the real-shaped sample events. The matcher below is a
 * test-only EventBridge matcher for the operators the patterns use (exact values, prefix, suffix, wildcard,
 * exists). It refuses any other operator, so a pattern that starts using one cannot pass unchecked.
 */

type Json = Record<string, unknown>;

function matches(pattern: EventPattern, event: Json): boolean {
  for (const [field, rule] of Object.entries(pattern)) {
    const value = event[field];
    if (Array.isArray(rule)) {
      if (!matchesField(rule as readonly FieldFilter[], value, field in event)) return false;
    } else {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
      if (!matches(rule as EventPattern, value as Json)) return false;
    }
  }
  return true;
}

function matchesField(filters: readonly FieldFilter[], value: unknown, present: boolean): boolean {
  // An array in the event matches when any of its elements does (EventBridge's rule for arrays).
  const values = Array.isArray(value) ? value : [value];
  return filters.some((filter) => {
    if (typeof filter === 'string') return present && values.some((v) => v === filter);
    const keys = Object.keys(filter);
    if (keys.length !== 1)
      throw new Error(`matcher: a filter with several operators: ${JSON.stringify(filter)}`);
    if ('exists' in filter) {
      const leaf = present && value !== null && (typeof value !== 'object' || Array.isArray(value));
      return filter.exists ? leaf : !present;
    }
    if (!present) return false;
    const strings = values.filter((v): v is string => typeof v === 'string');
    if ('prefix' in filter) return strings.some((v) => v.startsWith(filter.prefix));
    if ('suffix' in filter) return strings.some((v) => v.endsWith(filter.suffix));
    if ('wildcard' in filter) {
      const re = new RegExp(`^${filter.wildcard.split('*').map(escapeRegExp).join('.*')}$`, 's');
      return strings.some((v) => re.test(v));
    }
    throw new Error(`matcher: operator ${keys[0]} is not implemented`);
  });
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

const ACCOUNT = '123456789012';

function sample(file: string, account = ACCOUNT): Json {
  const event = JSON.parse(readFileSync(join(ROOT, 'test/fixtures/aws', file), 'utf8')) as Json;
  return { ...event, account };
}

function withDetail(event: Json, changes: Json): Json {
  return { ...event, detail: { ...(event.detail as Json), ...changes } };
}

/** The rules whose patterns match the event. */
function rulesFor(config: PatternConfig, event: Json): RuleName[] {
  return (Object.entries(rulePatterns(config)) as [RuleName, EventPattern][])
    .filter(([, pattern]) => matches(pattern, event))
    .map(([name]) => name);
}

const GATED: PatternConfig = {
  account: ACCOUNT,
  pipelines: ['my*', 'payments-api'],
  approvalActionNames: ['Image*Approval'],
  scanSource: 'inspector',
};
const DEFAULTS: PatternConfig = {
  account: ACCOUNT,
  pipelines: ['*'],
  approvalActionNames: ['Tollgate*'],
  scanSource: 'inspector',
};

const STARTED = 'action-execution-state-change.approval-started.synthesized.json';
const SUCCEEDED = 'action-execution-state-change.approval-succeeded.synthesized.json';
const FAILED = 'action-execution-state-change.approval-failed.synthesized.json';
const CLOUDTRAIL = 'cloudtrail-put-approval-result.derived.json';

describe('the test matcher itself', () => {
  it('refuses operators it does not implement', () => {
    const pattern = { detail: { state: [{ 'anything-but': 'STARTED' }] } } as unknown as EventPattern;
    expect(() => matches(pattern, sample(STARTED))).toThrow(/anything-but is not implemented/);
  });

  it('implements exact, prefix, suffix, wildcard and exists as EventBridge does', () => {
    const event = { a: 'payments-api', b: ['x', 'y'], c: { d: 1 } };
    expect(matches({ a: ['payments-api'] }, event)).toBe(true);
    expect(matches({ a: [{ prefix: 'pay' }] }, event)).toBe(true);
    expect(matches({ a: [{ suffix: '-api' }] }, event)).toBe(true);
    expect(matches({ a: [{ wildcard: 'p*s-*i' }] }, event)).toBe(true);
    expect(matches({ a: [{ wildcard: 'p*x' }] }, event)).toBe(false);
    expect(matches({ b: ['y'] }, event)).toBe(true);
    expect(matches({ z: [{ exists: false }] }, event)).toBe(true);
    expect(matches({ a: [{ exists: false }] }, event)).toBe(false);
    expect(matches({ c: [{ exists: true }] }, event)).toBe(false);
    expect(matches({ missing: ['x'] }, event)).toBe(false);
  });
});

describe('approval rules', () => {
  it('an approval of a gated pipeline starting goes to approval-started, and only there', () => {
    expect(rulesFor(GATED, sample(STARTED))).toEqual(['approvalStarted']);
  });

  it('its end, approved or rejected, goes to approval-ended', () => {
    expect(rulesFor(GATED, sample(SUCCEEDED))).toEqual(['approvalEnded']);
    expect(rulesFor(GATED, sample(FAILED))).toEqual(['approvalEnded']);
    expect(rulesFor(GATED, withDetail(sample(SUCCEEDED), { state: 'ABANDONED' }))).toEqual(['approvalEnded']);
    expect(rulesFor(GATED, withDetail(sample(SUCCEEDED), { state: 'CANCELED' }))).toEqual(['approvalEnded']);
  });

  it('approvals of other pipelines and other approval actions match nothing', () => {
    expect(rulesFor(GATED, withDetail(sample(STARTED), { pipeline: 'billing-api' }))).toEqual([]);
    expect(rulesFor(GATED, withDetail(sample(STARTED), { action: 'ProductOwnerSignOff' }))).toEqual([]);
    // The default action glob is Tollgate*: the sample's ImageVulnerabilityApproval is someone else's approval.
    expect(rulesFor(DEFAULTS, sample(STARTED))).toEqual([]);
    expect(rulesFor(DEFAULTS, withDetail(sample(STARTED), { action: 'TollgateApproval' }))).toEqual([
      'approvalStarted',
    ]);
  });

  it('other actions, stage and pipeline events match nothing', () => {
    for (const file of [
      'action-execution-state-change.started.aws-docs.json',
      'action-execution-state-change.abandoned.aws-docs.json',
      'stage-execution-state-change.started.aws-docs.json',
      'stage-execution-state-change.security-gate-started.synthesized.json',
      'pipeline-execution-state-change.started.aws-docs.json',
    ]) {
      const event = sample(file);
      expect(rulesFor(GATED, event), file).toEqual([]);
      expect(rulesFor({ ...GATED, pipelines: ['*'], approvalActionNames: ['*'] }, event), file).toEqual([]);
    }
  });

  it('a Manual approval of another owner or category, or in progress, matches nothing', () => {
    const started = sample(STARTED);
    const type = (started.detail as Json).type as Json;
    expect(rulesFor(GATED, withDetail(started, { type: { ...type, owner: 'Custom' } }))).toEqual([]);
    expect(rulesFor(GATED, withDetail(started, { type: { ...type, category: 'Deploy' } }))).toEqual([]);
    expect(rulesFor(GATED, withDetail(started, { state: 'RESUMED' }))).toEqual([]);
  });

  it('events of another account or source match nothing (account and source are pinned)', () => {
    expect(rulesFor(GATED, sample(STARTED, '999999999999'))).toEqual([]);
    expect(rulesFor(GATED, { ...sample(STARTED), source: 'my.forged.source' })).toEqual([]);
  });
});

describe('the CloudTrail PutApprovalResult rule', () => {
  const call = (): Json => {
    const event = sample(CLOUDTRAIL);
    const detail = event.detail as Json;
    const parameters = detail.requestParameters as Json;
    return withDetail(event, {
      requestParameters: {
        ...parameters,
        pipelineName: 'myPipeline',
        actionName: 'ImageVulnerabilityApproval',
      },
    });
  };

  it('a successful call on a gated approval goes to approval-ended', () => {
    expect(rulesFor(GATED, call())).toEqual(['approvalResultCall']);
    expect(
      rulesFor(
        DEFAULTS,
        withDetail(call(), { requestParameters: { pipelineName: 'x', actionName: 'TollgateGate' } }),
      ),
    ).toEqual(['approvalResultCall']);
  });

  it('a failed call, another API call, or another pipeline matches nothing', () => {
    expect(rulesFor(GATED, withDetail(call(), { errorCode: 'InvalidApprovalTokenException' }))).toEqual([]);
    expect(rulesFor(GATED, withDetail(call(), { eventName: 'StartPipelineExecution' }))).toEqual([]);
    expect(
      rulesFor(
        GATED,
        withDetail(call(), {
          requestParameters: { pipelineName: 'billing-api', actionName: 'ImageXApproval' },
        }),
      ),
    ).toEqual([]);
  });
});

describe('scan rules', () => {
  const ecrScanConfig: PatternConfig = { ...GATED, scanSource: 'ecr' };

  it('an Inspector scan of an ECR image goes to scan-finished; EC2 and Lambda scans do not', () => {
    expect(rulesFor(GATED, sample('inspector2-scan-ecr-initial-scan.aws-docs.json'))).toEqual([
      'inspectorScan',
    ]);
    expect(rulesFor(GATED, sample('inspector2-scan-ec2-initial-scan.aws-docs.json'))).toEqual([]);
    expect(rulesFor(GATED, sample('inspector2-scan-lambda-initial-scan.aws-docs.json'))).toEqual([]);
  });

  it('an Inspector scan event without a digest matches nothing, even with an ECR resource', () => {
    const event = sample('inspector2-scan-ecr-initial-scan.aws-docs.json');
    const { 'image-digest': _, ...detail } = event.detail as Json;
    expect(rulesFor(GATED, { ...event, detail })).toEqual([]);
  });

  it('with ECR basic scanning, the ECR scan event goes to scan-finished and Inspector events do not', () => {
    expect(rulesFor(ecrScanConfig, sample('ecr-image-scan.aws-docs.json'))).toEqual(['ecrScan']);
    expect(rulesFor(ecrScanConfig, sample('inspector2-scan-ecr-initial-scan.aws-docs.json'))).toEqual([]);
    expect(rulesFor(GATED, sample('ecr-image-scan.aws-docs.json'))).toEqual([]);
  });

  it('other ECR and Inspector events match nothing', () => {
    for (const file of [
      'ecr-image-action-push.aws-docs.json',
      'inspector2-finding-ecr-package-vulnerability.aws-docs.json',
    ]) {
      expect(rulesFor(GATED, sample(file)), file).toEqual([]);
      expect(rulesFor(ecrScanConfig, sample(file)), file).toEqual([]);
    }
  });
});
