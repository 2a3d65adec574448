import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { RegionInfo } from 'aws-cdk-lib/region-info';
import { describe, expect, it } from 'vitest';
import {
  approvalActionArns,
  approvalPolicySize,
  checkApprovalPolicySize,
  checkEventPatternLimit,
  checkPatternSizes,
  type EventPattern,
  type FieldFilter,
  LONGEST_ARN_PLACE,
  largestPattern,
  longestGlobArn,
  MAX_EVENT_PATTERN_LIMIT,
  MAX_GLOBS,
  MAX_MANAGED_POLICY_CHARACTERS,
  MAX_PATTERN_CHARACTERS,
  type PatternConfig,
  type RuleName,
  rulePatterns,
  SCAN_SOURCES,
  type ScanSource,
  TollgateConfigError,
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
      if (typeof rule !== 'object' || rule === null) {
        throw new Error(
          `matcher: field ${field} is neither a list of filters nor a nested pattern: ${JSON.stringify(rule)}`,
        );
      }
      if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
      if (!matches(rule as EventPattern, value as Json)) return false;
    }
  }
  return true;
}

/**
 * The filter's one operator and its operand, when the operand has the shape this matcher implements; throws
 * otherwise. EventBridge gives other shapes other meanings (`{prefix: {"equals-ignore-case": …}}`, a
 * wildcard's `\*` escape, `{numeric: …}`), and reading them as the plain operator would decide wrongly.
 */
function operatorOf(filter: unknown): [string, string | boolean] {
  const shape = JSON.stringify(filter);
  if (typeof filter !== 'object' || filter === null || Array.isArray(filter)) {
    // Exact numbers, booleans and null are EventBridge filters too, but the patterns only compare strings.
    throw new Error(`matcher: a filter that is not a string or an operator: ${shape}`);
  }
  const entries = Object.entries(filter);
  if (entries.length !== 1) throw new Error(`matcher: a filter with other than one operator: ${shape}`);
  const [operator, operand] = entries[0]!;
  const refuse = (what: string) =>
    new Error(`matcher: operator ${operator} with ${what} is not implemented: ${shape}`);
  switch (operator) {
    case 'prefix':
    case 'suffix':
      if (typeof operand !== 'string') throw refuse('an operand other than a string');
      return [operator, operand];
    case 'wildcard':
      if (typeof operand !== 'string') throw refuse('an operand other than a string');
      if (operand.includes('\\')) throw refuse('an escape');
      return [operator, operand];
    case 'exists':
      if (typeof operand !== 'boolean') throw refuse('an operand other than true or false');
      return [operator, operand];
    default:
      throw new Error(`matcher: operator ${operator} is not implemented: ${shape}`);
  }
}

function matchesField(filters: readonly FieldFilter[], value: unknown, present: boolean): boolean {
  if (filters.length === 0) throw new Error('matcher: an empty list of filters (EventBridge refuses it)');
  // An array in the event matches when any of its elements does (EventBridge's rule for arrays).
  const values = Array.isArray(value) ? value : [value];
  // Every filter checked before any is applied: a refused one must not hide behind an earlier match.
  const checked = filters.map((filter) => (typeof filter === 'string' ? filter : operatorOf(filter)));
  return checked.some((filter) => {
    if (typeof filter === 'string') return present && values.some((v) => v === filter);
    const [operator, operand] = filter;
    if (operator === 'exists') {
      const leaf = present && value !== null && (typeof value !== 'object' || Array.isArray(value));
      return operand ? leaf : !present;
    }
    if (!present) return false;
    const text = operand as string;
    const strings = values.filter((v): v is string => typeof v === 'string');
    if (operator === 'prefix') return strings.some((v) => v.startsWith(text));
    if (operator === 'suffix') return strings.some((v) => v.endsWith(text));
    const re = new RegExp(`^${text.split('*').map(escapeRegExp).join('.*')}$`, 's');
    return strings.some((v) => re.test(v));
  });
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

const ACCOUNT = '123456789012';
const FIXTURES = join(ROOT, 'test/fixtures/aws');

/**
 * A fixture as the stack's own account would receive it. The files stay as published: the Inspector2
 * samples come from the docs' example account 111122223333, the others from 123456789012, and every rule
 * pins `account`, so the account is set here rather than edited in the copies.
 */
function sample(file: string, account = ACCOUNT): Json {
  const event = JSON.parse(readFileSync(join(FIXTURES, file), 'utf8')) as Json;
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

  it.each([
    [{ prefix: { 'equals-ignore-case': 'x' } }, /operator prefix with an operand other than a string/],
    [{ suffix: ['-api'] }, /operator suffix with an operand other than a string/],
    [{ wildcard: 7 }, /operator wildcard with an operand other than a string/],
    [{ wildcard: 'a\\*b' }, /operator wildcard with an escape/],
    [{ exists: 'true' }, /operator exists with an operand other than true or false/],
    [{ numeric: ['>', 0] }, /operator numeric is not implemented/],
    [{ prefix: 'p', suffix: 's' }, /other than one operator/],
    [{}, /other than one operator/],
    [5, /not a string or an operator: 5/],
    [null, /not a string or an operator: null/],
  ])('refuses an operand shape it does not implement: %j', (filter, message) => {
    const event = { a: 'payments-api' };
    // After a filter that matches, so a refusal cannot be skipped by `some` stopping early.
    const pattern = { a: ['payments-api', filter] } as unknown as EventPattern;
    expect(() => matches(pattern, event)).toThrow(message);
  });

  it('refuses a field whose rule is neither filters nor a nested pattern, and an empty filter list', () => {
    expect(() => matches({ a: 'payments-api' } as unknown as EventPattern, { a: 'payments-api' })).toThrow(
      /field a is neither/,
    );
    expect(() => matches({ a: [] }, { a: 'payments-api' })).toThrow(/empty list of filters/);
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

/*
 * Every sample event in test/fixtures/aws/ through every rule, under every configuration: the table below
 * says which rule must catch each one when the configuration gates it. A fixture in the folder that is in
 * neither the table nor NOT_EVENTS fails the test, so a new sample cannot go unchecked.
 */

/** The rule that must catch each sample event (when the configuration gates it), or null for none. */
const EXPECTED: Readonly<Record<string, RuleName | null>> = {
  // Manual approvals of myPipeline / ImageVulnerabilityApproval.
  'action-execution-state-change.approval-started.synthesized.json': 'approvalStarted',
  'action-execution-state-change.approval-succeeded.synthesized.json': 'approvalEnded',
  'action-execution-state-change.approval-failed.synthesized.json': 'approvalEnded',
  'cloudtrail-put-approval-result.derived.json': 'approvalResultCall',
  // Other actions (Deploy, Source), whatever their state.
  'action-execution-state-change.started.aws-docs.json': null,
  'action-execution-state-change.succeeded.aws-docs.json': null,
  'action-execution-state-change.failed.aws-docs.json': null,
  'action-execution-state-change.abandoned.aws-docs.json': null,
  'action-execution-state-change.aws-lambda-go.json': null,
  // Stage events, the approval's own stage included.
  'stage-execution-state-change.started.aws-docs.json': null,
  'stage-execution-state-change.security-gate-started.synthesized.json': null,
  'stage-execution-state-change.stopped.aws-docs.json': null,
  'stage-execution-state-change.resumed-after-retry.aws-docs.json': null,
  'stage-execution-state-change.aws-lambda-go.json': null,
  // Pipeline execution events.
  'pipeline-execution-state-change.started.aws-docs.json': null,
  'pipeline-execution-state-change.succeeded.aws-docs.json': null,
  'pipeline-execution-state-change.failed.aws-docs.json': null,
  'pipeline-execution-state-change.failed-git-tag-trigger.aws-docs.json': null,
  'pipeline-execution-state-change.stopping.aws-docs.json': null,
  'pipeline-execution-state-change.aws-lambda-go.json': null,
  // Scans: Inspector's of an ECR image, ECR basic scanning's; EC2 and Lambda scans are not images.
  'inspector2-scan-ecr-initial-scan.aws-docs.json': 'inspectorScan',
  'inspector2-scan-ec2-initial-scan.aws-docs.json': null,
  'inspector2-scan-lambda-initial-scan.aws-docs.json': null,
  'ecr-image-scan.aws-docs.json': 'ecrScan',
  // Other ECR and Inspector events.
  'ecr-image-action-push.aws-docs.json': null,
  'ecr-image-action-push.aws-lambda-go.json': null,
  'ecr-image-action-delete.aws-docs.json': null,
  'ecr-scan-resource-change.aws-docs.json': null,
  'inspector2-finding-ecr-package-vulnerability.aws-docs.json': null,
  'inspector2-finding-ecr-package-vulnerability.aws-docs-older.json': null,
  'inspector2-finding-event.us-timestamps.derived.json': null,
  'inspector2-coverage-ec2.aws-docs.json': null,
  'inspector2-coverage-ec2.aws-docs-older.json': null,
};

/** Fixtures that are API payloads or models, not events (other tests read them). */
const NOT_EVENTS: readonly string[] = [
  'describe-image-scan-findings.basic.awscli-example.json',
  'describe-image-scan-findings.enhanced.moto-fixture.json',
  'describe-image-scan-findings.complete-not-ready.aws-sdk-issue-289.json',
  'describe-images.docker-manifest-list.model-derived.json',
  'describe-images.image-manifest.model-derived.json',
  'describe-images.oci-image-index.model-derived.json',
  'get-pipeline-execution.v2-variables.model-derived.json',
  'get-pipeline-state.approval-in-progress.model-derived.json',
  'get-pipeline-state.awscli-example.json',
  'inspector2-api-model-extract.json',
  'list-action-executions.approval-in-progress.model-derived.json',
  'list-findings-response.ec2.elastic-integrations-mock.json',
  'list-findings-response.ecr.derived-from-aws-docs-event.json',
  'put-approval-result-error.invalid-token.shape-example.json',
  'put-approval-result-output.model-derived.json',
];

const FIXTURE_FILES = readdirSync(FIXTURES)
  .filter((f) => f.endsWith('.json'))
  .sort();

interface GlobVariant {
  readonly name: string;
  readonly pipelines: readonly string[];
  readonly approvalActionNames: readonly string[];
  /** Whether it gates the samples' approval: pipeline myPipeline, action ImageVulnerabilityApproval. */
  readonly gatesSample: boolean;
}

/** Every kind of filter a glob becomes: exact, prefix, suffix, wildcard, and none. */
const GLOB_VARIANTS: readonly GlobVariant[] = [
  {
    name: 'prefix, exact and wildcard globs',
    pipelines: GATED.pipelines,
    approvalActionNames: GATED.approvalActionNames,
    gatesSample: true,
  },
  {
    name: 'suffix globs',
    pipelines: ['*Pipeline'],
    approvalActionNames: ['*VulnerabilityApproval'],
    gatesSample: true,
  },
  { name: 'every pipeline and action', pipelines: ['*'], approvalActionNames: ['*'], gatesSample: true },
  {
    name: 'the defaults (Tollgate* actions)',
    pipelines: DEFAULTS.pipelines,
    approvalActionNames: DEFAULTS.approvalActionNames,
    gatesSample: false,
  },
  {
    name: 'another pipeline',
    pipelines: ['payments-*', 'billing-api'],
    approvalActionNames: ['Image*Approval'],
    gatesSample: false,
  },
];

const APPROVAL_RULES: readonly RuleName[] = ['approvalStarted', 'approvalEnded', 'approvalResultCall'];
const SCAN_RULE: Readonly<Record<ScanSource, RuleName>> = { inspector: 'inspectorScan', ecr: 'ecrScan' };

const CONFIGS = GLOB_VARIANTS.flatMap((variant) =>
  SCAN_SOURCES.map((scanSource) => ({
    name: `${variant.name}, ${scanSource} scans`,
    variant,
    scanSource,
    config: {
      account: ACCOUNT,
      pipelines: variant.pipelines,
      approvalActionNames: variant.approvalActionNames,
      scanSource,
    } satisfies PatternConfig,
  })),
);

/** The rules that must match a fixture under one configuration, from the table. */
function expectedRules(file: string, variant: GlobVariant, scanSource: ScanSource): RuleName[] {
  const rule = EXPECTED[file];
  if (!rule) return [];
  if (APPROVAL_RULES.includes(rule)) return variant.gatesSample ? [rule] : [];
  return rule === SCAN_RULE[scanSource] ? [rule] : [];
}

describe('every sample event against every rule', () => {
  it('every fixture is either in the table of events or a known non-event, and exists', () => {
    const listed = [...Object.keys(EXPECTED), ...NOT_EVENTS].sort();
    expect(new Set(listed).size).toBe(listed.length);
    expect(FIXTURE_FILES).toEqual(listed);
  });

  it('the table lists the events (files with a detail-type) and NOT_EVENTS the rest', () => {
    for (const file of Object.keys(EXPECTED)) expect('detail-type' in sample(file), file).toBe(true);
    for (const file of NOT_EVENTS) {
      const value = JSON.parse(readFileSync(join(FIXTURES, file), 'utf8')) as unknown;
      const event = typeof value === 'object' && value !== null && 'detail-type' in value;
      expect(event, file).toBe(false);
    }
  });

  it('every rule has a sample it must catch, and each configuration creates exactly its rules', () => {
    const caught = new Set(Object.values(EXPECTED));
    for (const rule of [...APPROVAL_RULES, ...Object.values(SCAN_RULE)])
      expect(caught.has(rule), rule).toBe(true);
    for (const { name, config, scanSource } of CONFIGS) {
      expect(Object.keys(rulePatterns(config)).sort(), name).toEqual(
        [...APPROVAL_RULES, SCAN_RULE[scanSource]].sort(),
      );
    }
  });

  it.each(FIXTURE_FILES.filter((file) => !NOT_EVENTS.includes(file)))('%s', (file) => {
    expect(Object.keys(EXPECTED), `${file} is not in the table: say which rule must catch it`).toContain(
      file,
    );
    const actual: Record<string, RuleName[]> = {};
    const expected: Record<string, RuleName[]> = {};
    for (const { name, config, variant, scanSource } of CONFIGS) {
      actual[name] = rulesFor(config, sample(file));
      expected[name] = expectedRules(file, variant, scanSource);
      // From another account, nothing: every rule pins the stack's account.
      expect(rulesFor(config, sample(file, '999999999999')), `${file}, ${name}, another account`).toEqual([]);
    }
    expect(actual).toEqual(expected);
  });
});

describe('the size of the rule patterns (EventBridge holds each to 2048 characters)', () => {
  /** The largest pattern's size, as CloudFormation hands it to EventBridge (compact JSON, a 12-digit account). */
  const largest = (pipelines: readonly string[], approvalActionNames: readonly string[]) =>
    Math.max(
      ...SCAN_SOURCES.flatMap((scanSource) =>
        Object.values(
          rulePatterns({ account: '123456789012', pipelines, approvalActionNames, scanSource }),
        ).map((pattern) => JSON.stringify(pattern).length),
      ),
    );
  // 16 pipeline globs of 100 characters, and a 17th as long as the boundary wants.
  const names = Array.from(
    { length: 16 },
    (_, i) => `pipeline-${String(i).padStart(2, '0')}-${'x'.repeat(88)}`,
  );
  const actions = ['Tollgate*', 'Security-*'];
  const room = MAX_PATTERN_CHARACTERS - largest([...names, ''], actions);
  const fits = [...names, 'p'.repeat(room)];
  const over = [...names, 'p'.repeat(room + 1)];

  it('the boundary is made of valid globs, within MAX_GLOBS', () => {
    expect(names.every((n) => n.length === 100)).toBe(true);
    expect(room).toBeGreaterThan(0);
    expect(room + 1).toBeLessThanOrEqual(100);
    expect(over.length).toBeLessThanOrEqual(MAX_GLOBS);
    expect(largest(fits, actions)).toBe(MAX_PATTERN_CHARACTERS);
    expect(largest(over, actions)).toBe(MAX_PATTERN_CHARACTERS + 1);
  });

  it('accepts a largest pattern of exactly 2048 characters, and refuses 2049, naming both props, the size and the limit', () => {
    expect(() => checkPatternSizes(fits, actions)).not.toThrow();
    let error: unknown;
    try {
      checkPatternSizes(over, actions);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(TollgateConfigError);
    expect((error as TollgateConfigError).key).toBe('pipelines / approvalActionNames');
    expect((error as Error).message).toBe(
      "Tollgate: pipelines / approvalActionNames: expected globs whose EventBridge rule patterns fit EventBridge's " +
        'limit of 2048 characters per event pattern (fewer or shorter globs: a common prefix as one `prefix*` glob; ' +
        "or raise the account's quota and set eventPatternLimit / tollgate:eventPatternLimit, up to 4096); " +
        "got 17 pipeline and 2 approval action globs, whose approvalEnded rule's pattern is 2049 characters",
    );
    // The approval actions' globs count as much: one character more there is refused the same way.
    expect(() => checkPatternSizes(fits, [...actions.slice(0, 1), 'Security-x*'])).toThrow(
      /is 2049 characters$/,
    );
  });

  it('MAX_GLOBS globs of 100 characters, each accepted one by one, are refused together', () => {
    const many = Array.from(
      { length: MAX_GLOBS },
      (_, i) => `p${String(i).padStart(2, '0')}-${'y'.repeat(96)}`,
    );
    expect(() => checkPatternSizes(many, ['Tollgate*'])).toThrow(/limit of 2048 characters/);
    // Every pipeline and the default action: far from the limit.
    expect(() => checkPatternSizes(['*'], ['Tollgate*'])).not.toThrow();
  });

  it('with a raised limit (eventPatternLimit), patterns up to it are accepted, one more character refused', () => {
    expect(() => checkPatternSizes(over, actions, 2049)).not.toThrow();
    expect(() => checkPatternSizes(over, actions, MAX_PATTERN_CHARACTERS)).toThrow(/is 2049 characters$/);
    const many = Array.from(
      { length: MAX_GLOBS },
      (_, i) => `p${String(i).padStart(2, '0')}-${'y'.repeat(95)}*`,
    );
    const size = largestPattern(many, actions)!.size;
    expect(size).toBeGreaterThan(MAX_PATTERN_CHARACTERS);
    expect(() => checkPatternSizes(many, actions, size)).not.toThrow();
    expect(() => checkPatternSizes(many, actions, size - 1)).toThrow(
      `limit of ${size - 1} characters per event pattern`,
    );
    // MAX_GLOBS globs of 100 characters, of both kinds, all fit the highest limit.
    expect(() => checkPatternSizes(many, many, MAX_EVENT_PATTERN_LIMIT)).toThrow(
      '; 4096 is the most the quota is raised to)',
    );
    expect(() => checkPatternSizes(many, actions, MAX_EVENT_PATTERN_LIMIT)).not.toThrow();
  });

  it('eventPatternLimit: whole characters from 2048 (the default quota) to 4096, else refused by its key', () => {
    for (const ok of [MAX_PATTERN_CHARACTERS, 3000, MAX_EVENT_PATTERN_LIMIT]) {
      expect(checkEventPatternLimit('eventPatternLimit', ok)).toBe(ok);
    }
    expect(MAX_PATTERN_CHARACTERS).toBe(2048);
    expect(MAX_EVENT_PATTERN_LIMIT).toBe(4096);
    for (const bad of [2047, 4097, 2048.5, Number.NaN, '3000', undefined]) {
      let error: unknown;
      try {
        checkEventPatternLimit('eventPatternLimit', bad);
      } catch (e) {
        error = e;
      }
      expect(error, String(bad)).toBeInstanceOf(TollgateConfigError);
      expect((error as TollgateConfigError).key).toBe('eventPatternLimit');
    }
    expect(() => checkEventPatternLimit('tollgate:eventPatternLimit', 4097)).toThrow(
      "Tollgate: tollgate:eventPatternLimit: expected whole characters from 2048 (EventBridge's default event " +
        "pattern size quota) to 4096, the account's raised quota; got 4097",
    );
  });

  it('what fits beside the default action glob, as infra/README.md says: exact names vs `prefix*` globs', () => {
    // 100 characters each: an exact name is a string in the patterns, a `prefix*` glob {"prefix": …}.
    const exact = (n: number) =>
      Array.from({ length: n }, (_, i) => `pipeline-${String(i).padStart(2, '0')}-${'x'.repeat(88)}`);
    const prefixed = (n: number) =>
      Array.from({ length: n }, (_, i) => `pipeline-${String(i).padStart(2, '0')}-${'x'.repeat(87)}*`);
    expect([...exact(1), ...prefixed(1)].every((g) => g.length === 100)).toBe(true);
    const within = (globs: readonly string[], limit = MAX_PATTERN_CHARACTERS) => {
      try {
        checkPatternSizes(globs, ['Tollgate*'], limit);
        return true;
      } catch {
        return false;
      }
    };
    expect([within(exact(16)), within(exact(17))]).toEqual([true, false]);
    expect([within(prefixed(15)), within(prefixed(16))]).toEqual([true, false]);
    // With the quota raised to 4096, MAX_GLOBS of either kind.
    expect([within(exact(MAX_GLOBS), 4096), within(prefixed(MAX_GLOBS), 4096)]).toEqual([true, true]);
    // 25 short globs of each kind, with wildcards: their patterns are well within the default, but their
    // 625 approval ARNs are not within an IAM policy (below).
    const short = (n: number, c: string) => Array.from({ length: n }, (_, i) => `${c}${i}-*`);
    expect(() => checkPatternSizes(short(MAX_GLOBS, 'p'), short(MAX_GLOBS, 'a'))).not.toThrow();
    expect(() => checkApprovalPolicySize(short(MAX_GLOBS, 'p'), short(MAX_GLOBS, 'a'))).toThrow(
      /got 25 pipeline × 25 approval action globs, 625 ARNs/,
    );
    // What does fit both: 25 short globs of one kind beside 3 of the other, or 9 of each (not 10).
    expect(() => checkApprovalPolicySize(short(MAX_GLOBS, 'p'), short(3, 'a'))).not.toThrow();
    expect(() => checkApprovalPolicySize(short(3, 'p'), short(MAX_GLOBS, 'a'))).not.toThrow();
    expect(() => checkApprovalPolicySize(short(MAX_GLOBS, 'p'), short(4, 'a'))).toThrow(/100 ARNs/);
    expect(() => checkApprovalPolicySize(short(9, 'p'), short(9, 'a'))).not.toThrow();
    expect(() => checkApprovalPolicySize(short(10, 'p'), short(10, 'a'))).toThrow(/100 ARNs/);
  });
});

describe('the size of the PutApprovalResult statement (IAM holds a managed policy to 6144 characters)', () => {
  const pipelines = (n: number) => Array.from({ length: n }, (_, i) => `checkout-api-prod-${i}`);
  const actions = (n: number) => Array.from({ length: n }, (_, i) => `SecurityGate${i}`);

  it('accepts a statement up to 6144 characters, measured at the ARNs’ longest, and refuses the first over, naming both props, the ARNs, the size and the limit', () => {
    const regions = RegionInfo.regions;
    expect(Math.max(...regions.map((r) => r.name.length))).toBe(LONGEST_ARN_PLACE.region.length);
    expect(regions.map((r) => r.name)).toContain(LONGEST_ARN_PLACE.region);
    const partitions = regions.map((r) => r.partition ?? '');
    expect(Math.max(...partitions.map((p) => p.length))).toBe(LONGEST_ARN_PLACE.partition.length);
    expect(partitions).toContain(LONGEST_ARN_PLACE.partition);
    expect(LONGEST_ARN_PLACE.account).toMatch(/^\d{12}$/);
    // The statement alone in a policy document, compact JSON, as CDK renders it.
    const arns = approvalActionArns({
      ...LONGEST_ARN_PLACE,
      pipelines: ['p'],
      approvalActionNames: ['a', 'b'],
    });
    expect(approvalPolicySize(['p'], ['a', 'b'])).toEqual({
      arns: 2,
      size: JSON.stringify({
        Statement: [
          {
            Action: 'codepipeline:PutApprovalResult',
            Effect: 'Allow',
            Resource: arns,
            Sid: 'AnswerApprovals',
          },
        ],
        Version: '2012-10-17',
      }).length,
    });
    expect(arns[0]).toBe('arn:aws-us-gov:codepipeline:us-isof-south-1:123456789012:p/*/a');
    // The longest ARN of the globs, for CDK's estimate: two globs of 100 characters.
    expect(longestGlobArn(['p'.repeat(100)], ['a'.repeat(100)])).toBe(
      'arn:aws-us-gov:codepipeline:us-isof-south-1:123456789012:'.length + 203,
    );
    // 7 × 9: the most ARNs of these globs that fit; one action glob more is over.
    expect(approvalPolicySize(pipelines(7), actions(9)).size).toBeLessThanOrEqual(
      MAX_MANAGED_POLICY_CHARACTERS,
    );
    expect(() => checkApprovalPolicySize(pipelines(7), actions(9))).not.toThrow();
    let error: unknown;
    try {
      checkApprovalPolicySize(pipelines(7), actions(10));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(TollgateConfigError);
    expect((error as TollgateConfigError).key).toBe('pipelines / approvalActionNames');
    expect((error as Error).message).toBe(
      'Tollgate: pipelines / approvalActionNames: expected globs whose PutApprovalResult statement (one resource ' +
        "ARN per pipeline glob × approval action glob, in one IAM statement, which cannot be split) fits IAM's " +
        'limit of 6144 characters per managed policy (fewer or broader globs: a common prefix as one `prefix*` ' +
        'glob); got 7 pipeline × 10 approval action globs, 70 ARNs, whose statement is 6786 characters ' +
        '(12-digit account, partition aws-us-gov, region us-isof-south-1)',
    );
    // The reviewer's configurations, every one within the patterns' limit, are refused.
    for (const [p, a] of [
      [10, 8],
      [12, 12],
      [MAX_GLOBS, MAX_GLOBS],
    ] as const) {
      expect(() => checkPatternSizes(pipelines(p), actions(a)), `${p} × ${a}`).not.toThrow();
      expect(() => checkApprovalPolicySize(pipelines(p), actions(a))).toThrow(`${p * a} ARNs`);
    }
  });

  it('long globs count by their length: 22 pipelines of 100 characters beside an action of 100, not 23', () => {
    const long = (n: number) =>
      Array.from({ length: n }, (_, i) => `p${String(i).padStart(2, '0')}-${'x'.repeat(96)}`);
    const action = [`A${'z'.repeat(99)}`];
    // Their patterns fit the raised quota…
    expect(() => checkPatternSizes(long(23), action, MAX_EVENT_PATTERN_LIMIT)).not.toThrow();
    // …but 23 of their ARNs are over a managed policy.
    expect(() => checkApprovalPolicySize(long(22), action)).not.toThrow();
    expect(() => checkApprovalPolicySize(long(23), action)).toThrow(
      /got 23 pipeline × 1 approval action globs, 23 ARNs, whose statement is 6185 characters/,
    );
    // Every glob the patterns allow beside the default action glob fits.
    expect(() => checkApprovalPolicySize(long(MAX_GLOBS), ['Tollgate*'])).not.toThrow();
    // A statement of exactly 6144 characters is accepted, one character more refused.
    const room = MAX_MANAGED_POLICY_CHARACTERS - approvalPolicySize([...long(22), 'q'], action).size;
    expect(room).toBeGreaterThan(0);
    expect(room).toBeLessThan(99);
    const fits = [...long(22), 'q'.repeat(1 + room)];
    const over = [...long(22), 'q'.repeat(2 + room)];
    expect(approvalPolicySize(fits, action).size).toBe(MAX_MANAGED_POLICY_CHARACTERS);
    expect(() => checkApprovalPolicySize(fits, action)).not.toThrow();
    expect(() => checkApprovalPolicySize(over, action)).toThrow(/whose statement is 6145 characters/);
  });
});
