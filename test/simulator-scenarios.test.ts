import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Inspector2Client, ListFindingsCommand } from '@aws-sdk/client-inspector2';
import { describe, expect, it } from 'vitest';
import { ensureTable } from '../adapters/dynamodb/table.js';
import { exampleScenarios } from '../reliability/scenarios.js';
import { InputError } from '../shared/errors.js';
import { readFindingsDocument } from '../shared/findings/readers.js';
import { coverageState, ecrScanState, inspectorScanState } from '../shared/gate/scan.js';
import {
  answeredBy,
  runScenario,
  SimClock,
  type SimulationOptions,
  type SimulationResult,
} from '../simulator/run.js';
import { FAILABLE_OPERATIONS, loadScenario, SCAN_STATUSES } from '../simulator/scenario.js';
import { SCANNED_REASONS, World } from '../simulator/world.js';
import { useLocalDynamo } from './gate-harness.js';
import { ROOT } from './helpers.js';

/*
 * What a scenario file may say, and what its expectations can tell: a scenario that names something the
 * world does not have, or an expectation that cannot fail, is refused or reported, never replayed as a pass.
 */

const dynamo = useLocalDynamo();
const tmp = mkdtempSync(join(tmpdir(), 'tollgate-scenarios-'));
let files = 0;
let tables = 0;

type Json = Record<string, unknown>;

const EXECUTION = '00000001-5c4d-4e6f-8a9b-0c1d2e3f4a5b';
const DIGEST = 'sha256:ea7c5d4916fee16a84ab59b2e37233604d06b60dccaa55268177535f7d4223c1';
const KEY = { pipeline: 'billing-api', stage: 'Deploy', action: 'TollgateApproval' };

/** Example 01 (a clean image approved), changed by `change`, written where its relative paths still hold. */
function scenarioFile(change: (s: Json) => void): string {
  const s = JSON.parse(
    readFileSync(join(ROOT, 'examples/scenarios/01-clean-image-approved.json'), 'utf8'),
  ) as Json;
  s.policy = join(ROOT, 'examples/policies/baseline.yaml');
  const world = s.world as { findings: Record<string, { file: string }> };
  for (const source of Object.values(world.findings)) {
    source.file = join(ROOT, 'examples/scenarios', source.file);
  }
  change(s);
  const file = join(tmp, `s${files++}.json`);
  writeFileSync(file, JSON.stringify(s, null, 2));
  return file;
}

const world = (s: Json) => s.world as { approvals: Json[]; findings: Json };
const steps = (s: Json) => s.steps as Json[];

/** The problems loading `file` raises, one line each (`FILE:LINE:COL: PATH: expected …; got …`). */
function refusal(file: string): string {
  try {
    loadScenario(file);
  } catch (e) {
    if (e instanceof InputError) return e.message;
    throw e;
  }
  return 'loaded';
}

async function replay(
  file: string,
  options: Omit<SimulationOptions, 'doc' | 'tableName'> = {},
): Promise<SimulationResult> {
  const { client } = dynamo();
  const tableName = `tollgate-simsc-${process.pid}-${tables++}`;
  await ensureTable(client, tableName);
  return runScenario(loadScenario(file), { ...options, doc: client, tableName });
}

describe('world.findings: the key is the image', () => {
  it('names pipelines, stages, actions, repositories and executions only as AWS could (a replay tollgate audit can read)', () => {
    // The base loads: each refusal below is its one change's.
    expect(refusal(scenarioFile(() => undefined))).toBe('loaded');
    const cases: [(s: Json) => void, RegExp][] = [
      [
        (s) => (world(s).approvals[0]!.pipeline = 'billing api (prod)'),
        /^\S+:\d+:\d+: world\.approvals\[0\]\.pipeline: expected a pipeline name \(letters, digits and \. @ _ -, at most 100\); got "billing api \(prod\)"$/,
      ],
      [
        (s) => (world(s).approvals[0]!.executionId = 'exé-1'),
        /^\S+:\d+:\d+: world\.approvals\[0\]\.executionId: expected an execution id \(printable ASCII, no spaces\); got "exé-1"$/,
      ],
      [
        (s) => ((s.world as { images: Json[] }).images[0]!.repository = 'Billing/API'),
        /^\S+:\d+:\d+: world\.images\[0\]\.repository: expected an ECR repository name .*; got "Billing\/API"$/,
      ],
    ];
    // The first problem is the change's own (a renamed approval is then also one its steps do not name).
    for (const [change, message] of cases)
      expect(refusal(scenarioFile(change)).split('\n')[0]).toMatch(message);
  });

  it('a key that is not an image digest is refused, at its key path', () => {
    const file = scenarioFile((s) => {
      world(s).findings = { 'sha256:EA7C': { findings: [] } };
    });
    expect(refusal(file)).toContain(
      'world.findings.sha256:EA7C: expected an image digest sha256:<64 hex digits>',
    );
  });

  it('a findings file about another image is refused, naming world.findings.<digest>', () => {
    const file = scenarioFile((s) => {
      world(s).findings = {
        [DIGEST]: { file: join(ROOT, 'examples/findings/payments-api.list-findings.json') },
      };
    });
    expect(refusal(file)).toMatch(
      new RegExp(
        `world\\.findings\\.${DIGEST}: expected findings of the image ${DIGEST} .*; got .*payments-api\\.list-findings\\.json naming the image sha256:3f9a1c0d`,
      ),
    );
  });

  it('so do inline findings, and a findings step, about another image', () => {
    const other = JSON.parse(
      readFileSync(join(ROOT, 'examples/findings/payments-api.list-findings.json'), 'utf8'),
    ) as { findings: unknown[] };
    const inline = scenarioFile((s) => {
      world(s).findings = { [DIGEST]: { findings: other.findings } };
    });
    expect(refusal(inline)).toContain(`world.findings.${DIGEST}: expected findings of the image ${DIGEST}`);
    const step = scenarioFile((s) => {
      steps(s).push({ at: '1m', findings: { digest: DIGEST, findings: other.findings } });
    });
    expect(refusal(step)).toContain(`steps[2].findings: expected findings of the image ${DIGEST}`);
  });
});

describe('steps name approvals the world has', () => {
  it('an approvalStarted of an action the world does not have is an input error, not an internal one', () => {
    const file = scenarioFile((s) => {
      (steps(s)[0]!.approvalStarted as Json).action = 'Nope';
    });
    expect(refusal(file)).toMatch(
      /s\d+\.json:\d+:\d+: steps\[0\]\.approvalStarted\.action: expected an approval action the world has by this step .*billing-api\/Deploy\/TollgateApproval; got "Nope"/,
    );
  });

  it('an approvalStarted of another execution than the one the action runs is refused', () => {
    const file = scenarioFile((s) => {
      (steps(s)[0]!.approvalStarted as Json).executionId = '00000099-5c4d-4e6f-8a9b-0c1d2e3f4a5b';
    });
    expect(refusal(file)).toContain(
      `steps[0].approvalStarted.executionId: expected the execution billing-api/Deploy/TollgateApproval runs at this step (${EXECUTION}`,
    );
  });

  it('approvalEnded and review of an unknown approval, or an execution it never ran, are refused', () => {
    const unknownPipeline = scenarioFile((s) => {
      steps(s).push({
        at: '2m',
        approvalEnded: { ...KEY, pipeline: 'p', executionId: EXECUTION, state: 'FAILED' },
      });
    });
    expect(refusal(unknownPipeline)).toContain(
      'steps[2].approvalEnded.pipeline: expected an approval action',
    );
    const unknownExecution = scenarioFile((s) => {
      steps(s).push({ at: '2m', approvalEnded: { ...KEY, executionId: 'e-99', state: 'ABANDONED' } });
    });
    expect(refusal(unknownExecution)).toContain(
      `steps[2].approvalEnded.executionId: expected an execution of billing-api/Deploy/TollgateApproval the world has (${EXECUTION}); got "e-99"`,
    );
    const review = scenarioFile((s) => {
      steps(s).push({ at: '2m', review: { ...KEY, stage: 'Prod', status: 'Approved', identity: 'bob' } });
    });
    expect(refusal(review)).toContain('steps[2].review.stage: expected an approval action');
  });

  it('an action twice in world.approvals is refused: a newer execution is a supersede step', () => {
    const file = scenarioFile((s) => {
      world(s).approvals.push({ ...world(s).approvals[0], executionId: 'e-2', token: undefined });
    });
    expect(refusal(file)).toContain(
      'world.approvals[1].action: expected an approval action no other approval is (world.approvals[0] is billing-api/Deploy/TollgateApproval too',
    );
  });

  it('an execution a supersede step brings is known from that step on; the one it replaced ends apart', async () => {
    const early = scenarioFile((s) => {
      steps(s).unshift({ at: '0s', approvalStarted: { ...KEY, executionId: 'e-2' } });
      steps(s).push({ at: '1m', supersede: { ...KEY, executionId: 'e-2' } });
    });
    expect(refusal(early)).toContain('steps[0].approvalStarted.executionId: expected the execution');

    // The superseded execution's ABANDONED event comes after the newer one started: the newer one goes on.
    const file = scenarioFile((s) => {
      s.steps = [
        { at: '0s', approvalStarted: { ...KEY, executionId: EXECUTION } },
        {
          at: '1m',
          supersede: { ...KEY, executionId: 'e-2', customData: world(s).approvals[0]!.customData },
        },
        { at: '1m', approvalStarted: { ...KEY, executionId: 'e-2' } },
        { at: '1m', approvalEnded: { ...KEY, executionId: EXECUTION, state: 'ABANDONED' } },
        {
          at: '2m',
          scan: {
            digest: DIGEST,
            repository: 'billing/api',
            status: 'INITIAL_SCAN_COMPLETE',
            counts: { MEDIUM: 1, TOTAL: 1 },
          },
        },
      ];
      s.expect = [
        { executionId: EXECUTION, outcome: null, approvalResult: null },
        { executionId: 'e-2', state: 'CLOSED', outcome: 'APPROVE', approvalResult: 'Approved' },
      ];
    });
    const r = await replay(file);
    expect(r.mismatches).toEqual([]);
  });
});

describe('world.images: what DescribeImages answers, by tag or by digest', () => {
  const images = (s: Json) => (s.world as { images: Json[] }).images;

  it('an approval naming an index by digest escalates at once with the reason; one ECR lacks too', async () => {
    const index = await replay(
      scenarioFile((s) => {
        images(s)[0]!.mediaType = 'application/vnd.oci.image.index.v1+json';
        s.expect = [];
      }),
    );
    expect(index.gates).toEqual([
      expect.objectContaining({ state: 'ACTED', outcome: 'ESCALATE', notifications: 1 }),
    ]);
    expect(index.gates[0]!.decision?.summary).toMatch(/names an image index/);
    const absent = await replay(
      scenarioFile((s) => {
        images(s).length = 0;
        s.expect = [];
      }),
    );
    expect(absent.gates[0]!.decision?.summary).toMatch(`ECR has no image billing/api@${DIGEST}`);
    // As the example has it (an image manifest), approved.
    const clean = await replay(scenarioFile(() => undefined));
    expect(clean.mismatches).toEqual([]);
    expect(clean.gates[0]).toMatchObject({ outcome: 'APPROVE' });
  });
});

describe('expectations that can fail', () => {
  const lost = (expectation: Json) =>
    scenarioFile((s) => {
      s.steps = [{ at: '0s', approvalStarted: { ...KEY, executionId: EXECUTION, event: false } }];
      s.expect = [expectation];
    });

  it('a gate its events named but the store never held is a mismatch, unless the expectation says state: null', async () => {
    const never = await replay(lost({ executionId: EXECUTION, notifications: 0 }));
    expect(never.mismatches).toEqual([
      `${EXECUTION}: expected a gate; its approval was seen, but the store has no gate for it`,
    ]);
    const absent = await replay(lost({ executionId: EXECUTION, state: null, outcome: null }));
    expect(absent.mismatches).toEqual([]);
    const unknown = await replay(lost({ executionId: 'e-elsewhere', notifications: 0 }));
    expect(unknown.mismatches).toEqual(['e-elsewhere: expected a gate; none was seen']);
  });

  it('state: null fails when the gate is there', async () => {
    const file = scenarioFile((s) => {
      s.expect = [{ executionId: EXECUTION, state: null }];
    });
    expect((await replay(file)).mismatches).toEqual([`${EXECUTION}: expected no gate; got one, CLOSED`]);
  });

  it('an expectation with its key alone, or an empty reviewer, is refused', () => {
    expect(
      refusal(
        scenarioFile((s) => {
          s.expect = [{ executionId: EXECUTION, stage: 'Deploy' }];
        }),
      ),
    ).toContain(
      'expect[0]: expected at least one of state, outcome, notifications, approvalResult, reviewer',
    );
    expect(
      refusal(
        scenarioFile((s) => {
          s.expect = [{ executionId: EXECUTION, reviewer: '' }];
        }),
      ),
    ).toContain('expect[0].reviewer: expected at least 1 character(s); got ""');
  });

  it('an expectation without stage and action that two gates of the execution match is a mismatch', async () => {
    const file = scenarioFile((s) => {
      const approval = world(s).approvals[0]!;
      world(s).approvals.push({ ...approval, action: 'SecondApproval', token: undefined });
      s.steps = [
        { at: '0s', approvalStarted: { ...KEY, executionId: EXECUTION } },
        { at: '0s', approvalStarted: { ...KEY, action: 'SecondApproval', executionId: EXECUTION } },
      ];
      s.expect = [{ executionId: EXECUTION, state: 'WAITING' }];
    });
    expect((await replay(file)).mismatches).toEqual([
      `${EXECUTION}: expected one gate; 2 match (Deploy/TollgateApproval, Deploy/SecondApproval): name its stage and action`,
    ]);
  });
});

describe('keys that would be read and then ignored', () => {
  it('fail.operation is an operation a call can have', () => {
    const file = scenarioFile((s) => {
      steps(s).splice(1, 0, { at: '10s', fail: { operation: 'ListFinding', times: 50 } });
    });
    expect(refusal(file)).toMatch(
      /steps\[1\]\.fail\.operation: expected one of .*ListFindings.*; got "ListFinding"/,
    );
  });

  it('every failable operation is one the world answers or the store calls', () => {
    const loaded = loadScenario(scenarioFile(() => undefined));
    const w = new World(loaded, new SimClock(0));
    const store = new Set(['GetItem', 'PutItem', 'Query', 'TransactWriteItems']);
    for (const operation of FAILABLE_OPERATIONS.filter((o) => !store.has(o))) {
      let name = '';
      try {
        (w as unknown as { dispatch(o: string, input: Json): Json }).dispatch(operation, {});
      } catch (e) {
        name = (e as Error).name;
      }
      expect(name, operation).not.toBe('UnknownOperationException');
    }
  });

  it("the example scenarios call every failable operation, and only failable ones (the store's half too)", async () => {
    const folder = join(ROOT, 'examples/scenarios');
    const called = new Set<string>();
    // The whole folder, held to the reliability suite's listing: a scenario a filter here missed would go
    // unreplayed, and its calls uncounted, while the suite replays it.
    const files = readdirSync(folder).sort();
    expect(files.length).toBeGreaterThan(0);
    expect(files.map((f) => join(folder, f))).toEqual(exampleScenarios().map((s) => s.file));
    for (const name of files) {
      const result = await replay(join(folder, name));
      for (const operation of Object.keys(result.calls)) called.add(operation);
    }
    // The scenarios gate their pipelines by name; a glob with a wildcard makes the sweep list the pipelines.
    const lost = join(folder, files.find((f) => f.includes('approval-started-event-lost'))!);
    const wildcard = await replay(lost, { discovery: { pipelines: ['*'] } });
    expect(wildcard.mismatches).toEqual([]);
    for (const operation of Object.keys(wildcard.calls)) called.add(operation);
    // A name no call carries fails nothing; a call no name matches cannot be failed by a scenario.
    expect([...FAILABLE_OPERATIONS].filter((o) => !called.has(o))).toEqual([]);
    expect([...called].filter((o) => !(FAILABLE_OPERATIONS as readonly string[]).includes(o))).toEqual([]);
  }, 120_000);

  it('a step earlier than the one before it is refused', () => {
    const file = scenarioFile((s) => {
      steps(s)[0]!.at = '10m';
    });
    expect(refusal(file)).toContain(
      `steps[1].at: expected an offset no earlier than the previous step's (steps[0].at is "10m"): steps run in order; got "40s"`,
    );
  });

  it('a token that is not a lowercase UUID is refused', () => {
    const file = scenarioFile((s) => {
      world(s).approvals[0]!.token = '------------------------------------';
    });
    expect(refusal(file)).toContain('world.approvals[0].token: expected a lowercase UUID');
  });

  it('sweep: false is refused (a step that does nothing)', () => {
    const file = scenarioFile((s) => {
      steps(s).push({ at: '2m', sweep: false });
    });
    expect(refusal(file)).toContain('steps[2].sweep: expected one of true; got false');
  });

  it('scan.status is a status a scanner reports; a typo is refused', () => {
    const file = scenarioFile((s) => {
      (steps(s)[1]!.scan as Json).status = 'INITIAL_SCAN_COMPLTE';
    });
    expect(refusal(file)).toMatch(
      /steps\[1\]\.scan\.status: expected one of .*INITIAL_SCAN_COMPLETE.*; got "INITIAL_SCAN_COMPLTE"/,
    );
  });

  it('every scan status reads in the world as the gate reads it', () => {
    const loaded = loadScenario(scenarioFile(() => undefined));
    const w = new World(loaded, new SimClock(0));
    const coverage = (status: string) => {
      w.setScan(DIGEST, 'billing/api', status);
      const listed = (w as unknown as { dispatch(o: string, input: Json): Json }).dispatch('ListCoverage', {})
        .coveredResources as {
        scanStatus: { statusCode: string; reason: string };
        lastScannedAt?: unknown;
      }[];
      const { statusCode, reason } = listed[0]!.scanStatus;
      const scanned = listed[0]!.lastScannedAt;
      return coverageState({
        statusCode,
        reason,
        lastScannedAt: scanned === undefined ? undefined : String(scanned),
      }).state;
    };
    for (const status of SCAN_STATUSES) {
      const event = status === 'INITIAL_SCAN_COMPLETE' ? inspectorScanState(status) : ecrScanState(status);
      // A coverage reason the ECR model does not know reads, in an ECR event, as pending: coverage decides.
      const want =
        event === 'pending'
          ? coverageState({
              statusCode: 'ACTIVE',
              reason: status,
              lastScannedAt: SCANNED_REASONS.has(status) ? '2026-11-25T12:00:00.000Z' : undefined,
            }).state
          : event;
      expect(coverage(status), status).toBe(want);
    }
  });
});

describe('findings as the SDK hands them over', () => {
  it('the world answers ListFindings with Dates for epoch seconds, as the SDK does, read on the fast path', async () => {
    const loaded = loadScenario(scenarioFile(() => undefined));
    const w = new World(loaded, new SimClock(0));
    // The simulator's own clients: the world answers in place of the HTTP call, before any deserialiser.
    const client = answeredBy(
      new Inspector2Client({
        region: 'eu-west-1',
        credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
        maxAttempts: 1,
      }),
      w,
    );
    const page = await client.send(new ListFindingsCommand({}));
    const first = page.findings?.[0];
    expect(first?.firstObservedAt).toEqual(new Date(1795478400_000));
    expect(first?.lastObservedAt).toEqual(new Date(1795482000_000));
    expect(first?.updatedAt).toEqual(new Date(1795482000_000));
    expect(first?.resources?.[0]?.details?.awsEcrContainerImage?.pushedAt).toEqual(new Date(1795477800_000));
    // The gate's reader takes every row of it on its fast path (the detailed one keeps a full finding).
    const table = readFindingsDocument(page).findings;
    expect(table.length).toBe(3);
    for (let i = 0; i < table.length; i++) expect(table.sourceOf(i).cached, `row ${i}`).toBeUndefined();
    // Converted once, when the world was given them: a second answer is the same objects, not a new copy.
    const again = await client.send(new ListFindingsCommand({}));
    expect(again.findings?.[0]).toBe(first);
  });
});
