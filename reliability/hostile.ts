import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { paginateScan } from '@aws-sdk/lib-dynamodb';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { DynamoStore } from '../adapters/dynamodb/store.js';
import { runEvaluate } from '../cli/evaluate.js';
import { EXIT } from '../cli/exit.js';
import { MalformedEventError } from '../functions/common/handler.js';
import { InputError } from '../shared/errors.js';
import { mergeFindings, parseFindingsText } from '../shared/findings/parse.js';
import { describeError } from '../shared/gate/gate.js';
import { type CompiledPolicy, compilePolicy } from '../shared/policy/compile.js';
import { evaluate } from '../shared/policy/evaluate.js';
import { MAX_POLICY_BYTES, parsePolicy } from '../shared/policy/load.js';
import {
  type FunctionName,
  type Invoke,
  lambdaContext,
  SimClock,
  type SimulationOptions,
  simulationHandlers,
} from '../simulator/run.js';
import { actionEvent, cloudTrailEvent, scanEvent, scheduledEvent, World } from '../simulator/world.js';
import type { Violation } from './invariants.js';
import { checkLines, checkPayloads, type LogFacts } from './logs.js';
import {
  applyJson,
  applyText,
  type JsonMutation,
  jsonMutation,
  type Path,
  setAt,
  type TextMutation,
  textMutation,
} from './mutate.js';
import { LogCapture, type Replayer } from './replay.js';
import { ROOT, type SuiteScenario } from './scenarios.js';

/*
 * Hostile and malformed input.
 *
 * Events. Each case runs over a world (and a table) of its own, whose one approval is in progress and
 * current for an image with a CRITICAL finding, its scan complete: no genuine decision approves it, so an
 * approval would be the fuzz's doing. The gate is already open (and its findings read once) when the case's
 * event is a scan event or a sweep, not yet when it is a STARTED (and a sweep follows a gate the case
 * opened), so that the mutated events reach decisions; a share of the cases must (MIN_DECIDED_SHARE,
 * MIN_ACTED_SHARE), or the fuzz is dead and the suite fails. Each case is an event (a real AWS sample from test/fixtures/aws, as captured or re-pointed at the
 * world's account and region, or an event the simulator builds), mutated: fields dropped, set to values of
 * the wrong type, huge strings, deep nesting, `__proto__` keys; and on the envelope a forged `source`,
 * another `account` or `region`, or another `detail-type`. Or it is any JSON value at all. Every case goes to
 * every handler (a misrouted event must be refused by the handler itself), and must end in a result or
 * `{ignored}`:
 *   - crash loop: the handler throws, and throws again on Lambda's two retries. The world is healthy (no
 *     faults), so a retry cannot help: the event would be dead-lettered for nothing. Except a malformed event
 *     of the function's own kind (a Manual approval's action event, CloudTrail's PutApprovalResult), which is
 *     thrown as MalformedEventError on purpose: dead-lettered, the failed-events queue keeps it and pages;
 *   - not ignored: an event with a forged source, another account, region or detail-type is handled;
 *   - approval: the gate decides APPROVE, or CodePipeline accepts an Approved result.
 * The handlers' log lines, SNS messages and EventBridge events are checked as in the replays (logs.ts).
 *
 * Findings files: a mutation that approves although its unmutated input does not, while it kept unchanged
 * (same image, same scan) a finding that a rule allowing none of them rejected or escalated, is an
 * approval from hostile input: the mutation did not remove the offence. Checked twice: as the reader under
 * test reads the mutated files, and independently of it (the mutated file as JSON.parse reads it, compared
 * with its unmutated input: a finding that alone does not approve is still there, unchanged, and nothing
 * outside its array changed), which a run of MIN_CASES_FOR_DEAD cases or more must reach at least once
 * (`deadFindingsFuzz`).
 *
 * Policies. The example policies, mutated as text (deletions, insertions of YAML syntax, truncation, lines
 * duplicated, swapped, re-indented, values replaced) or as data (fields dropped, wrong types, unknown keys),
 * through parsePolicy: an InputError whose every problem names the file, line and column (a file over the
 * size limit has no line), or a policy that then compiles and evaluates. Any other exception is a violation:
 * in the functions it would fail every cold start.
 *
 * Findings files. The example exports and the AWS samples, mutated as data or as text, through `tollgate
 * evaluate` itself (runEvaluate, from a file, text and JSON output): an InputError or a decision; any other
 * exception is a violation.
 */

export interface HostileSection {
  readonly events: EventFacts;
  readonly policies: ParseFacts;
  readonly findings: ParseFacts;
  readonly violations: readonly Violation[];
  readonly logs: LogFacts;
}

export interface EventFacts {
  readonly cases: number;
  readonly deliveries: number;
  readonly ignored: number;
  readonly handled: number;
  /** Deliveries of a malformed event of the function's own kind: thrown on every attempt, so dead-lettered. */
  readonly deadLettered: number;
  /** Deliveries that threw once and then succeeded on Lambda's retry. */
  readonly recovered: number;
  readonly mustIgnore: number;
  /** Cases after which the approval's gate had a decision. */
  readonly decided: number;
  /** Cases in which Tollgate sent a result to CodePipeline or published an escalation. */
  readonly acted: number;
}

export interface ParseFacts {
  readonly cases: number;
  readonly accepted: number;
  readonly inputErrors: number;
  /**
   * Findings only: the cases in which a finding that alone keeps its file from approving is still there,
   * unchanged, with everything around it as it was (the independent check's reach; see `untouchedOffence`).
   */
  readonly offencesKept?: number;
}

/**
 * The size from which a findings run that kept no offence untouched is dead. A healthy check keeps one in
 * about 3.75% of the cases (75 of 2,000 over ten seeds at 200 cases; the lowest, seed 110, 3 of 200), so a
 * share threshold fails healthy seeds, while a check that lost its reach keeps none at all. A healthy run of
 * n cases keeps none with probability (1 - 0.0375)^n: about 2% at 100 cases, 0.05% at 200 (the quick size).
 */
export const MIN_CASES_FOR_DEAD = 200;

/** The findings fuzz's independent check checked nothing: no case kept an offence for it to check. */
export function deadFindingsFuzz(facts: { cases: number; offencesKept?: number }): boolean {
  return facts.cases >= MIN_CASES_FOR_DEAD && (facts.offencesKept ?? 0) === 0;
}

type Json = Record<string, unknown>;

const FIXTURES = join(ROOT, 'test', 'fixtures', 'aws');
const EVENT_SAMPLES = [
  'action-execution-state-change.approval-started.synthesized.json',
  'action-execution-state-change.approval-succeeded.synthesized.json',
  'cloudtrail-put-approval-result.derived.json',
  'ecr-image-scan.aws-docs.json',
  'inspector2-scan-ecr-initial-scan.aws-docs.json',
  'inspector2-scan-ec2-initial-scan.aws-docs.json',
];

const VALID_SOURCES = new Set([
  'aws.codepipeline',
  'aws.inspector2',
  'aws.ecr',
  'aws.events',
  'aws.scheduler',
]);
const VALID_TYPES = new Set([
  'CodePipeline Action Execution State Change',
  'AWS API Call via CloudTrail',
  'Inspector2 Scan',
  'ECR Image Scan',
  'Scheduled Event',
]);

type Envelope =
  | { readonly field: 'none' }
  | { readonly field: 'source' | 'account' | 'region' | 'detail-type'; readonly value: string };

const envelope: fc.Arbitrary<Envelope> = fc.oneof(
  { weight: 8, arbitrary: fc.constant({ field: 'none' as const }) },
  fc.record({
    field: fc.constant('source' as const),
    value: fc.oneof(
      fc.constantFrom(
        'tollgate',
        'aws.codepipeline.fake',
        'custom.pipeline',
        'AWS.CODEPIPELINE',
        ' aws.ecr',
        'aws.inspector',
      ),
      fc.string({ maxLength: 20 }),
    ),
  }),
  fc.record({
    field: fc.constant('account' as const),
    value: fc.oneof(
      fc.constantFrom('000000000000', '111122223333', '999999999999'),
      fc.string({ maxLength: 14 }),
    ),
  }),
  fc.record({
    field: fc.constant('region' as const),
    value: fc.oneof(
      fc.constantFrom('us-east-1', 'eu-central-1', 'cn-north-1', 'EU-WEST-1'),
      fc.string({ maxLength: 14 }),
    ),
  }),
  fc.record({
    field: fc.constant('detail-type' as const),
    value: fc.oneof(
      fc.constantFrom(
        'CodePipeline Pipeline Execution State Change',
        'Inspector2 Finding',
        'ECR Image Action',
        'Tollgate Decision',
      ),
      fc.string({ maxLength: 30 }),
    ),
  }),
);

export interface FuzzOptions {
  readonly numRuns: number;
  readonly seed: number;
  /** Events only: replaces the AWS adapters the handlers run with (a broken one, to prove the checks fail). */
  readonly adapters?: SimulationOptions['adapters'];
  /** Events only: wraps each case's handlers (a handler that ignores everything: a dead fuzz). */
  readonly handlers?: (handlers: Record<FunctionName, Invoke>) => Record<FunctionName, Invoke>;
  /** Findings only: replaces `tollgate evaluate` (a broken one, to prove the checks fail). */
  readonly evaluateWith?: typeof runEvaluate;
}

/** At least this share of the event cases must reach a decision (a fuzz that never decides checks nothing). */
export const MIN_DECIDED_SHARE = 0.05;
/** … and at least this share an action (a result sent to CodePipeline, an escalation published). */
export const MIN_ACTED_SHARE = 0.03;

/**
 * Events through the handlers. `s` is the world (scenario 02: a critical image). Every case runs against a
 * world of its own, on a table of its own: its approval in progress and current (its token valid), the
 * image's scan complete, so that a STARTED or a scan event, mutated, can reach a decision. Half the cases
 * find the gate already open (its STARTED delivered while the scan was pending, then the scan completed in
 * the world): a scan event or a sweep then decides it; the other half find no gate: a STARTED opens and
 * decides it. No case may approve: the image has a CRITICAL finding, whatever the event says.
 */
export async function fuzzEvents(
  replayer: Replayer,
  s: SuiteScenario,
  options: FuzzOptions,
): Promise<{ facts: EventFacts; violations: Violation[]; logs: LogFacts }> {
  const { scenario } = s.loaded;
  const approval = scenario.world.approvals[0]!;
  const image = scenario.world.images[0]!;
  const key = {
    pipeline: approval.pipeline,
    executionId: approval.executionId,
    stage: approval.stage,
    action: approval.action,
  };
  const scanSteps = scenario.steps.flatMap((step) =>
    step.scan && step.scan.digest === image.digest ? [step.scan] : [],
  );
  const samples = EVENT_SAMPLES.map((f) => JSON.parse(readFileSync(join(FIXTURES, f), 'utf8')) as Json);

  /** The events a case mutates, from its own world (the approval's ids, the world's account and region). */
  const basesOf = (world: World, slot: Parameters<typeof actionEvent>[1]): Json[] => [
    ...samples,
    ...samples.map((e) => ({ ...e, account: world.account, region: world.region })),
    actionEvent(world, slot, 'STARTED'),
    actionEvent(world, slot, 'STARTED'),
    actionEvent(world, slot, 'SUCCEEDED'),
    scanEvent(
      world,
      'inspector',
      { ...image, status: 'INITIAL_SCAN_COMPLETE', counts: { CRITICAL: 0, TOTAL: 0 } },
      image.tags,
    ),
    // The scenario's own scan event (its counts agree with the findings: a decision needs no second read).
    ...scanSteps.map((scan) => scanEvent(world, 'inspector', scan, image.tags)),
    scanEvent(world, 'inspector', { ...image, status: 'INITIAL_SCAN_COMPLETE' }, image.tags),
    scanEvent(world, 'ecr', { ...image, status: 'COMPLETE', counts: {} }, image.tags),
    cloudTrailEvent(world, `arn:aws:sts::${world.account}:assumed-role/Attacker/x`, {
      pipelineName: approval.pipeline,
      stageName: approval.stage,
      actionName: approval.action,
      token: '00000000-0000-4000-8000-000000000000',
      result: { status: 'Approved', summary: 'forged' },
    }),
    scheduledEvent(world),
  ];
  const probe = basesOf(new World(s.loaded, new SimClock(Date.parse(scenario.start))), {
    ...key,
    actionExecutionId: 'x',
  });
  const startedBases = new Set(
    probe.flatMap((e, i) => ((e.detail as Json | undefined)?.state === 'STARTED' ? [i] : [])),
  );
  const baseCount = probe.length;

  const mutated = fc.record({
    kind: fc.constant('mutated' as const),
    // Mostly the world's own events (a STARTED, a scan, a sweep of this approval): they reach a decision.
    base: fc.oneof(
      { weight: 1, arbitrary: fc.nat({ max: 2 * samples.length - 1 }) },
      { weight: 4, arbitrary: fc.integer({ min: 2 * samples.length, max: baseCount - 1 }) },
    ),
    // Often none or one mutation: a case that breaks the event three ways is refused before any decision.
    mutations: fc.oneof(
      { weight: 2, arbitrary: fc.array(jsonMutation, { minLength: 0, maxLength: 1 }) },
      { weight: 1, arbitrary: fc.array(jsonMutation, { minLength: 2, maxLength: 3 }) },
    ),
    envelope,
    // An execution the world does not run: the event names an approval that is not there.
    fresh: fc.oneof(
      { weight: 4, arbitrary: fc.constant(false) },
      { weight: 1, arbitrary: fc.constant(true) },
    ),
    // Mostly the gate a base event needs: none yet for a STARTED, an open one for the others.
    flip: fc.oneof({ weight: 4, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
  });
  const anything = fc.record({
    kind: fc.constant('anything' as const),
    value: fc.oneof(fc.jsonValue({ maxDepth: 4 }), fc.anything({ maxDepth: 3 })),
    flip: fc.boolean(),
  });
  const cases = fc.oneof({ weight: 8, arbitrary: mutated }, { weight: 1, arbitrary: anything });

  const facts = {
    cases: 0,
    deliveries: 0,
    ignored: 0,
    handled: 0,
    deadLettered: 0,
    recovered: 0,
    mustIgnore: 0,
    decided: 0,
    acted: 0,
  };
  const violations: Violation[] = [];
  let logLines = 0;
  let logViolations = 0;

  const runCase = (c: CaseOf<typeof cases>) =>
    replayer.withTable(async (doc, tableName) => {
      facts.cases++;
      const clock = new SimClock(Date.parse(scenario.start) + facts.cases * 10_000);
      const world = new World(s.loaded, clock);
      const slot = world.startApproval(approval);
      const built = simulationHandlers(s.loaded, world, clock, {
        doc,
        tableName,
        logLevel: 'DEBUG',
        ...(options.adapters ? { adapters: options.adapters } : {}),
      });
      const handlers = options.handlers ? options.handlers(built) : built;
      const capture = new LogCapture();
      const bases = basesOf(world, slot);
      const started = c.kind === 'mutated' && startedBases.has(c.base);
      const open = started === c.flip;
      if (open) {
        // The gate opens while the scan is pending, the scan completes in the world, and a sweep reads the
        // findings once (a decision without a scan event's counts wants a second read, a sweep later): the
        // case's event (a scan event, a sweep, …) then decides it.
        world.setScan(image.digest, image.repository, 'PENDING_INITIAL_SCAN');
        await capture.during(async () => {
          await handlers['approval-started'](
            actionEvent(world, slot, 'STARTED'),
            lambdaContext('approval-started', world.region, world.account),
          );
          world.setScan(image.digest, image.repository, 'INITIAL_SCAN_COMPLETE');
          clock.set(clock.now().getTime() + 60_000);
          await handlers.sweep(scheduledEvent(world), lambdaContext('sweep', world.region, world.account));
        });
      }
      world.setScan(image.digest, image.repository, 'INITIAL_SCAN_COMPLETE');
      const setupCalls = world.calls.length;
      clock.set(clock.now().getTime() + 60_000);

      let event: unknown;
      let mustIgnore = false;
      // The event exactly as the world (or a real capture) sends it: nothing in it to refuse as malformed.
      const wellFormed =
        c.kind === 'mutated' &&
        c.mutations.length === 0 &&
        !c.fresh &&
        (c.envelope.field === 'none' || c.envelope.value === bases[c.base]?.[c.envelope.field]);
      if (c.kind === 'anything') {
        event = c.value;
      } else {
        const base = bases[c.base]!;
        const detail = base.detail as Json | undefined;
        const start =
          c.fresh && detail && typeof detail['execution-id'] === 'string'
            ? { ...base, detail: { ...detail, 'execution-id': `fuzz-${facts.cases}` } }
            : base;
        event = applyJson(start, c.mutations);
        if (
          c.envelope.field !== 'none' &&
          typeof event === 'object' &&
          event !== null &&
          !Array.isArray(event)
        ) {
          const original = base[c.envelope.field];
          (event as Json)[c.envelope.field] = c.envelope.value;
          const forged =
            c.envelope.value !== original &&
            !(c.envelope.field === 'source' && VALID_SOURCES.has(c.envelope.value)) &&
            !(c.envelope.field === 'detail-type' && VALID_TYPES.has(c.envelope.value)) &&
            !(c.envelope.field === 'account' && c.envelope.value === world.account) &&
            !(c.envelope.field === 'region' && c.envelope.value === world.region);
          mustIgnore = forged;
        }
      }
      if (mustIgnore) facts.mustIgnore++;
      await capture.during(async () => {
        for (const fn of Object.keys(handlers) as FunctionName[]) {
          facts.deliveries++;
          const errors: string[] = [];
          let result: { ignored?: string } | undefined;
          let done = false;
          let malformed = 0;
          for (let attempt = 1; attempt <= 3 && !done; attempt++) {
            try {
              result = await world.invoking(fn, () =>
                handlers[fn](structuredClone(event), lambdaContext(fn, world.region, world.account)),
              );
              done = true;
            } catch (e) {
              errors.push(describeError(e));
              if (e instanceof MalformedEventError) malformed++;
            }
          }
          const shown = show(event, 200);
          if (!done && malformed === 3) {
            // An approval event of the function's own kind that its schema refuses: dead-lettered on
            // purpose (the failed-events queue keeps it), never handled. A forged one must be ignored.
            facts.deadLettered++;
            if (mustIgnore) {
              violations.push({
                kind: 'not-ignored',
                detail: `${fn} dead-lettered a forged event: ${shown}`,
              });
            } else if (wellFormed) {
              // Deliberate only for an event that is malformed: an unmutated one dead-lettered is lost.
              violations.push({
                kind: 'dead-letter',
                detail: `${fn} dead-lettered an unmutated, well-formed event as malformed (${errors[0]}): ${shown}`,
              });
            }
            continue;
          }
          if (!done) {
            violations.push({
              kind: 'crash-loop',
              detail: `${fn} threw 3 times (${errors[0]}) for ${shown}`,
            });
            continue;
          }
          if (errors.length > 0) facts.recovered++;
          if (result?.ignored) facts.ignored++;
          else facts.handled++;
          if (mustIgnore && !result?.ignored) {
            violations.push({ kind: 'not-ignored', detail: `${fn} handled a forged event: ${shown}` });
          }
        }
      });

      // A gate the case's event opened (a STARTED, mutated or not) waits for a second read a sweep later:
      // the next scheduled sweep decides it, on whatever the event made the gate hold.
      if (!open) {
        const opened = await world.unobserved(() => new DynamoStore(doc, tableName).getGate(key));
        if (opened?.state === 'WAITING') {
          clock.set(clock.now().getTime() + 60_000);
          await capture.during(() =>
            world.invoking('sweep', () =>
              handlers.sweep(scheduledEvent(world), lambdaContext('sweep', world.region, world.account)),
            ),
          );
        }
      }
      const calls = world.calls.slice(setupCalls);
      const results = calls.filter((x) => x.operation === 'PutApprovalResult' && !x.failed);
      const published = calls.filter((x) => x.operation === 'Publish' && !x.failed);
      const gate = await world.unobserved(() => new DynamoStore(doc, tableName).getGate(key));
      if (gate?.outcome !== undefined) facts.decided++;
      if (results.length + published.length > 0) facts.acted++;
      // The image has a CRITICAL finding: nothing the event says may approve it (fail closed). Every gate and
      // decision of the case's table is looked at: a mutated key or a fresh execution opens a gate elsewhere.
      const stored = await world.unobserved(async () => {
        const items: Record<string, unknown>[] = [];
        for await (const page of paginateScan(
          { client: doc },
          { TableName: tableName, ConsistentRead: true },
        )) {
          items.push(...(page.Items ?? []));
        }
        return items;
      });
      const approvedItem = stored.find(
        (item) =>
          (item.sk === 'GATE' && (item.gate as { outcome?: string } | undefined)?.outcome === 'APPROVE') ||
          (item.sk === 'DECISION' &&
            (item.decision as { record?: { outcome?: string } } | undefined)?.record?.outcome === 'APPROVE'),
      );
      const approved =
        approvedItem !== undefined ||
        results.some((x) => (x.input.result as Json | undefined)?.status === 'Approved');
      if (approved) {
        violations.push({
          kind: 'approval-from-hostile-input',
          detail: `${approvedItem !== undefined ? `an APPROVE (${String(approvedItem.pk)} ${String(approvedItem.sk)})` : 'an Approved result'} after ${show(event, 300)}`,
        });
      }
      const found = [...checkLines(s, [{ ...approval }], capture.lines), ...checkPayloads(s, world)];
      logLines += capture.lines.length;
      logViolations += found.length;
      violations.push(...found);
    });

  const details = await fc.check(
    fc.asyncProperty(cases, async (c) => {
      await runCase(c);
      return true;
    }),
    { numRuns: options.numRuns, seed: options.seed, endOnFailure: true },
  );
  violations.push(...checked(details, 'event fuzz'));
  if (facts.cases > 0) {
    const share = (n: number) => `${n} of ${facts.cases} (${((100 * n) / facts.cases).toFixed(1)}%)`;
    if (facts.decided < MIN_DECIDED_SHARE * facts.cases) {
      violations.push({
        kind: 'dead-fuzz',
        detail: `event fuzz: only ${share(facts.decided)} cases reached a decision (at least ${100 * MIN_DECIDED_SHARE}% must)`,
      });
    }
    if (facts.acted < MIN_ACTED_SHARE * facts.cases) {
      violations.push({
        kind: 'dead-fuzz',
        detail: `event fuzz: only ${share(facts.acted)} cases reached an action (at least ${100 * MIN_ACTED_SHARE}% must)`,
      });
    }
  }
  return { facts, violations, logs: { lines: logLines, violations: logViolations } };
}

type CaseOf<A> = A extends fc.Arbitrary<infer T> ? T : never;

// ── policies ───────────────────────────────────────────────────────────────────────────────────────

const POLICY_FILE = 'fuzz/policy.yaml';

export function fuzzPolicies(options: FuzzOptions): { facts: ParseFacts; violations: Violation[] } {
  const dir = join(ROOT, 'examples', 'policies');
  const bases = readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => readFileSync(join(dir, f), 'utf8'));
  const parsedBases = bases.map((text) => parsePolicy(text, POLICY_FILE).policy as unknown);
  const findings = exampleFindingsTable();
  const facts = { cases: 0, accepted: 0, inputErrors: 0 };
  const violations: Violation[] = [];

  const asText = fc.record({
    kind: fc.constant('text' as const),
    base: fc.nat({ max: bases.length - 1 }),
    mutations: fc.array(textMutation, { minLength: 1, maxLength: 4 }),
  });
  const asData = fc.record({
    kind: fc.constant('data' as const),
    base: fc.nat({ max: bases.length - 1 }),
    mutations: fc.array(jsonMutation, { minLength: 1, maxLength: 3 }),
  });
  const special = fc.constantFrom(
    // An alias bomb, a document that is not a mapping, a file over the size limit, an empty file.
    `a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n`,
    '- version: 1\n',
    `version: 1\nname: big\n# ${'x'.repeat(MAX_POLICY_BYTES)}\n`,
    '',
    '\ufeff',
  );

  const details = fc.check(
    fc.property(
      fc.oneof(
        { weight: 15, arbitrary: asText },
        { weight: 10, arbitrary: asData },
        { weight: 1, arbitrary: special },
      ),
      (c) => {
        facts.cases++;
        const text =
          typeof c === 'string'
            ? c
            : c.kind === 'text'
              ? applyText(bases[c.base]!, c.mutations)
              : safeYaml(applyJson(parsedBases[c.base], c.mutations));
        try {
          const loaded = parsePolicy(text, POLICY_FILE);
          const compiled = compilePolicy(loaded);
          evaluate(compiled, {
            findings,
            now: new Date('2026-11-25T12:00:00Z'),
            pipeline: 'fuzz',
            image: undefined,
          });
          facts.accepted++;
        } catch (e) {
          if (!(e instanceof InputError)) {
            violations.push({
              kind: 'unexpected-exception',
              detail: `parsePolicy: ${describeError(e)} for ${JSON.stringify(text.slice(0, 300))}`,
            });
            return true;
          }
          facts.inputErrors++;
          for (const p of e.problems) {
            const sizeLimit = /a file of at most/.test(p.expected);
            if (p.file !== POLICY_FILE || (!sizeLimit && (p.line === undefined || p.column === undefined))) {
              violations.push({
                kind: 'unlocated-error',
                detail: `parsePolicy: "${e.message.split('\n')[0]}" has no line and column, for ${JSON.stringify(text.slice(0, 300))}`,
              });
            }
          }
        }
        return true;
      },
    ),
    { numRuns: options.numRuns, seed: options.seed, endOnFailure: true },
  );
  violations.push(...checked(details, 'policy fuzz'));
  return { facts, violations };
}

/** A short rendering of any value (BigInt, cycles and all), for a violation's detail. */
export function show(value: unknown, max: number): string {
  try {
    const text = JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v));
    return (text ?? String(value)).slice(0, max);
  } catch {
    return String(value).slice(0, max);
  }
}

/** fast-check stops at a property that throws: the suite's own failure is then a violation, not a crash. */
export function checked<T>(details: fc.RunDetails<T>, what: string): Violation[] {
  if (!details.failed) return [];
  return [
    {
      kind: 'unexpected-exception',
      detail: `${what}: the check itself failed: ${describeError(details.errorInstance)} (seed ${details.seed}, path ${details.counterexamplePath ?? '-'})`,
    },
  ];
}

function safeYaml(value: unknown): string {
  try {
    return stringify(value);
  } catch {
    return JSON.stringify(value) ?? '';
  }
}

const NOW = new Date('2026-11-25T12:00:00Z');

function exampleFindingsTable() {
  const file = join(ROOT, 'examples', 'findings', 'payments-api.list-findings.json');
  return mergeFindings([{ file, document: parseFindingsText(readFileSync(file, 'utf8'), file) }]).findings;
}

// ── findings files ─────────────────────────────────────────────────────────────────────────────────

const FINDINGS_SAMPLES = [
  'list-findings-response.ecr.derived-from-aws-docs-event.json',
  'list-findings-response.ec2.elastic-integrations-mock.json',
  'describe-image-scan-findings.basic.awscli-example.json',
  'describe-image-scan-findings.enhanced.moto-fixture.json',
];

/**
 * A sample response as the last page of its export: with its `nextToken` (the ListFindings sample has one),
 * every case built on it would be refused as a partial export before the reader and the decision are reached.
 */
function lastPage(text: string): string {
  const value = JSON.parse(text) as unknown;
  if (typeof value !== 'object' || value === null || !('nextToken' in value)) return text;
  const { nextToken: _more, ...rest } = value as Record<string, unknown>;
  return `${JSON.stringify(rest, null, 2)}\n`;
}

export async function fuzzFindings(
  options: FuzzOptions,
): Promise<{ facts: ParseFacts; violations: Violation[] }> {
  const dir = join(ROOT, 'examples', 'findings');
  const texts = [
    ...readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .sort()
      .map((f) => readFileSync(join(dir, f), 'utf8')),
    ...FINDINGS_SAMPLES.map((f) => lastPage(readFileSync(join(FIXTURES, f), 'utf8'))),
  ];
  const docs = texts.map((t) => JSON.parse(t) as unknown);
  const policy = join(ROOT, 'examples', 'policies', 'baseline.yaml');
  const tmp = mkdtempSync(join(tmpdir(), 'tollgate-fuzz-'));
  const facts = { cases: 0, accepted: 0, inputErrors: 0, offencesKept: 0 };
  const violations: Violation[] = [];

  type FileCase =
    | { readonly kind: 'data'; readonly base: number; readonly mutations: readonly JsonMutation[] }
    | { readonly kind: 'text'; readonly base: number; readonly mutations: readonly TextMutation[] }
    | { readonly kind: 'raw'; readonly value: string };
  const one: fc.Arbitrary<FileCase> = fc.oneof(
    fc.record({
      kind: fc.constant('data' as const),
      base: fc.nat({ max: docs.length - 1 }),
      mutations: fc.array(jsonMutation, { minLength: 1, maxLength: 4 }),
    }),
    fc.record({
      kind: fc.constant('text' as const),
      base: fc.nat({ max: texts.length - 1 }),
      mutations: fc.array(textMutation, { minLength: 1, maxLength: 3 }),
    }),
    fc.record({
      kind: fc.constant('raw' as const),
      value: fc.oneof(
        fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v) ?? ''),
        fc.string({ maxLength: 200 }),
      ),
    }),
  );
  const compiled = compilePolicy(parsePolicy(readFileSync(policy, 'utf8'), policy));
  /**
   * The findings of the unmutated inputs that make them not approve: those a rule that allows none of them
   * rejects or escalates (so that one such finding, unchanged, is enough). Undefined: the inputs approve, or
   * do not read.
   */
  const offences = (bases: readonly number[]) => {
    try {
      const set = setOf(bases.map((b, i) => ({ file: `base-${i}.json`, text: texts[b]! })));
      const record = decisionOf(compiled, set);
      if (record.outcome === 'APPROVE') return undefined;
      const ids = new Set(
        record.violations.filter((v) => v.allow === 0 && v.action !== 'warn').flatMap((v) => v.findings),
      );
      const rows = set.findings.rows().filter((f) => ids.has(f.vulnerabilityId));
      return {
        image: JSON.stringify(set.image ?? null),
        scan: JSON.stringify(set.scan ?? null),
        rows: rows.map((r) => JSON.stringify(r)),
      };
    } catch {
      return undefined;
    }
  };
  /**
   * A mutation that approves although it kept, unchanged, a finding that made its unmutated input not
   * approve, for the same image and scan (the same policy, the same time): the mutation did not remove the
   * offence, so the APPROVE came from something it garbled. Its id, or undefined.
   */
  const keptOffence = (files: readonly FileCase[], paths: readonly string[]): string | undefined => {
    if (files.some((f) => f.kind === 'raw')) return undefined;
    const base = offences(files.map((f) => (f.kind === 'raw' ? 0 : f.base)));
    if (!base || base.rows.length === 0) return undefined;
    try {
      const set = setOf(paths.map((file) => ({ file, text: readFileSync(file, 'utf8') })));
      if (
        JSON.stringify(set.image ?? null) !== base.image ||
        JSON.stringify(set.scan ?? null) !== base.scan
      ) {
        return undefined;
      }
      const kept = set.findings.rows().find((r) => base.rows.includes(JSON.stringify(r)));
      return kept?.vulnerabilityId;
    } catch {
      return undefined;
    }
  };
  const independent = offenceCheck(compiled, docs);
  const render = (c: FileCase): string => {
    if (c.kind === 'raw') return c.value;
    if (c.kind === 'text') return applyText(texts[c.base]!, c.mutations);
    return JSON.stringify(applyJson(docs[c.base], c.mutations)) ?? '';
  };

  try {
    const details = await fc.check(
      fc.asyncProperty(
        fc.array(one, { minLength: 1, maxLength: 2 }),
        fc.constantFrom('json', 'text') as fc.Arbitrary<'json' | 'text'>,
        async (files, format) => {
          facts.cases++;
          const paths = files.map((f, i) => {
            const path = join(tmp, `findings-${i}.json`);
            writeFileSync(path, render(f));
            return path;
          });
          const untouched = files.some((f) => f.kind === 'raw')
            ? undefined
            : independent.untouchedOffence(
                files.map((f) => (f.kind === 'raw' ? 0 : f.base)),
                paths.map((path) => {
                  try {
                    return JSON.parse(readFileSync(path, 'utf8')) as unknown;
                  } catch {
                    return undefined;
                  }
                }),
              );
          if (untouched) facts.offencesKept++;
          try {
            const out = await (options.evaluateWith ?? runEvaluate)({
              policy,
              findings: paths,
              format,
              color: false,
              now: NOW,
            });
            facts.accepted++;
            if (out.exitCode === EXIT.APPROVE && untouched) {
              const { file, offence } = untouched;
              violations.push({
                kind: 'approval-from-hostile-input',
                detail: `tollgate evaluate: APPROVE of a mutation that kept unchanged the element ${offence.index} of ${formatPath(offence.array)} of findings-${file}.json, which alone does not approve, for ${paths.map((p) => readFileSync(p, 'utf8').slice(0, 200)).join(' | ')}`,
              });
            } else if (out.exitCode === EXIT.APPROVE) {
              const kept = keptOffence(files, paths);
              if (kept) {
                violations.push({
                  kind: 'approval-from-hostile-input',
                  detail: `tollgate evaluate: APPROVE of a mutation that kept ${kept} (its unmutated input does not approve) for ${paths.map((p) => readFileSync(p, 'utf8').slice(0, 200)).join(' | ')}`,
                });
              }
            }
          } catch (e) {
            if (e instanceof InputError) facts.inputErrors++;
            else {
              violations.push({
                kind: 'unexpected-exception',
                detail: `tollgate evaluate: ${describeError(e)} for ${paths.map((p) => readFileSync(p, 'utf8').slice(0, 200)).join(' | ')}`,
              });
            }
          }
          return true;
        },
      ),
      { numRuns: options.numRuns, seed: options.seed, endOnFailure: true },
    );
    violations.push(...checked(details, 'findings fuzz'));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  if (deadFindingsFuzz(facts)) {
    violations.push({
      kind: 'dead-fuzz',
      detail: `findings fuzz: none of ${facts.cases} cases kept an offending finding untouched (the independent check checked nothing)`,
    });
  }
  return { facts, violations };
}

/** The decision `tollgate evaluate` makes of a merged set of findings files, with no pipeline, at NOW. */
function decisionOf(compiled: CompiledPolicy, set: ReturnType<typeof setOf>) {
  return evaluate(compiled, {
    findings: set.findings,
    now: NOW,
    pipeline: undefined,
    image: set.image,
    scan: set.scan,
    conditions: set.conditions,
  }).record;
}

function setOf(named: readonly { file: string; text: string }[]) {
  return mergeFindings(named.map(({ file, text }) => ({ file, document: parseFindingsText(text, file) })));
}

/**
 * The independent check of the findings fuzz. `keptOffence` reads the mutated files with the reader under
 * test, so a reader bug that loses a finding would agree with itself. This one needs the reader only on
 * unmutated inputs (whose readings the unit tests pin): a finding that alone keeps its own file from
 * approving, and its file from approving beside the case's other file as it was (`offencesOf`), and is still
 * in the mutated file (JSON.parse), unchanged, in its array, with everything outside that array as it was,
 * has not been removed, and the case must not approve. What the mutations garbled (the array's other
 * elements, the other file) can make the case an error, never an approval: only a newer closed copy of the
 * same finding could, and random values do not make one.
 *
 * `docs` are the unmutated inputs; a case names its files by their index in `docs` (`bases`).
 */
export function offenceCheck(compiled: CompiledPolicy, docs: readonly unknown[]) {
  const offenceCache = new Map<string, Offence[]>();
  /** The inputs do not approve because of a finding that a rule allowing none of them rejects or escalates. */
  const offends = (values: readonly unknown[]): boolean => {
    try {
      const set = setOf(values.map((v, i) => ({ file: `base-${i}.json`, text: JSON.stringify(v) })));
      const record = decisionOf(compiled, set);
      return (
        record.outcome !== 'APPROVE' &&
        record.violations.some((v) => v.allow === 0 && v.action !== 'warn' && v.findings.length > 0)
      );
    } catch {
      return false;
    }
  };
  /**
   * Offences of file `at` of the case: the elements of its findings arrays that, the only element of their
   * array, make their file offend alone and beside the other file unmutated. Alone too: when the other file
   * is what offends, every element would pass the second test, harmless ones included, and a mutation that
   * removes the other file's offence would then be reported for approving.
   */
  const offencesOf = (bases: readonly number[], at: number): Offence[] => {
    const key = `${bases.join(',')}@${at}`;
    const cached = offenceCache.get(key);
    if (cached) return cached;
    const doc = docs[bases[at]!];
    const withFile = (value: unknown) => bases.map((b, i) => (i === at ? value : docs[b]));
    const found: Offence[] = [];
    for (const array of objectArrays(doc)) {
      const items = valueAt(doc, array) as unknown[];
      items.forEach((element, index) => {
        const alone = withArray(doc, array, [element]);
        if (offends([alone]) && (bases.length === 1 || offends(withFile(alone)))) {
          found.push({ array, index, element });
        }
      });
    }
    offenceCache.set(key, found);
    return found;
  };
  /**
   * The offence that the mutated files (`mutated`, as JSON.parse reads them; undefined: not JSON) kept
   * untouched, and the file it is in, or undefined.
   */
  const untouchedOffence = (
    bases: readonly number[],
    mutated: readonly unknown[],
  ): { file: number; offence: Offence } | undefined => {
    for (let at = 0; at < bases.length; at++) {
      const value = mutated[at];
      if (value === undefined) continue;
      const base = docs[bases[at]!];
      for (const offence of offencesOf(bases, at)) {
        const items = valueAt(value, offence.array);
        if (!Array.isArray(items) || !items.some((item) => isDeepStrictEqual(item, offence.element)))
          continue;
        if (isDeepStrictEqual(withArray(value, offence.array, []), withArray(base, offence.array, []))) {
          return { file: at, offence };
        }
      }
    }
    return undefined;
  };
  return { untouchedOffence };
}

/** A finding that alone keeps its file from approving: `element`, at `index` of the array at `array`. */
interface Offence {
  readonly array: Path;
  readonly index: number;
  readonly element: unknown;
}

/**
 * The paths of the arrays of objects in `value` reached through objects only (the findings lists of every
 * export format, not the lists inside a finding).
 */
function objectArrays(value: unknown, path: Path = []): Path[] {
  if (Array.isArray(value)) {
    return value.length > 0 && value.every((v) => typeof v === 'object' && v !== null && !Array.isArray(v))
      ? [path]
      : [];
  }
  if (typeof value !== 'object' || value === null) return [];
  return Object.entries(value).flatMap(([key, child]) => objectArrays(child, [...path, key]));
}

function valueAt(root: unknown, path: Path): unknown {
  let v = root;
  for (const key of path) {
    if (typeof v !== 'object' || v === null || !Object.hasOwn(v, key)) return undefined;
    v = (v as Record<string | number, unknown>)[key];
  }
  return v;
}

/** A copy of `root` with the array at `path` replaced by `items` (the root itself when the path is empty). */
function withArray(root: unknown, path: Path, items: readonly unknown[]): unknown {
  if (path.length === 0) return [...items];
  const copy = structuredClone(root);
  setAt(copy, path, [...items]);
  return copy;
}

function formatPath(path: Path): string {
  return path.length === 0 ? '(the root)' : path.join('.');
}
