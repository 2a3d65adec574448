import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalDynamo, startLocalDynamo } from '../adapters/dynamodb/local.js';
import { ensureTable } from '../adapters/dynamodb/table.js';
import { InputError } from '../shared/errors.js';
import { parsePolicy } from '../shared/policy/load.js';
import { MAX_ALIAS_EXPANSIONS } from '../shared/yaml-input.js';
import {
  type GateView,
  runScenario,
  type SimulationOptions,
  type SimulationResult,
} from '../simulator/run.js';
import { type LoadedScenario, loadScenario, ScenarioSchema } from '../simulator/scenario.js';
import { actionEvent, type World } from '../simulator/world.js';
import { ROOT } from './helpers.js';

/*
 * Bugs the reliability suite (reliability/, `npm run reliability`) found in the gate, each replayed here on its
 * own so that it stays fixed whatever the suite's sampling.
 */

let dynamo: LocalDynamo | undefined;
beforeAll(async () => {
  dynamo = await startLocalDynamo();
});
afterAll(async () => {
  await dynamo?.close();
});

const scenario = (file: string): LoadedScenario => loadScenario(join(ROOT, 'examples', 'scenarios', file));
let tables = 0;

async function replay(
  loaded: LoadedScenario,
  options: Omit<SimulationOptions, 'doc' | 'tableName' | 'onWorld'>,
): Promise<{ result: SimulationResult; world: World }> {
  const client = dynamo!.client;
  const tableName = `tollgate-regression-${process.pid}-${++tables}`;
  await ensureTable(client, tableName);
  let world: World | undefined;
  const result = await runScenario(loaded, {
    ...options,
    doc: client,
    tableName,
    onWorld: (w) => {
      world = w;
    },
  });
  return { result, world: world! };
}

describe('regressions the reliability suite found', () => {
  it('one failed store write after the escalation went out no longer sends a second escalation', async () => {
    // 07: the scan event decides ESCALATE and publishes; the write that records it is the step's second
    // PutItem. It failed once, the gate stayed DECIDED, and the sweep escalated again when the lease ran out.
    // Since the audit trail, that write is a TransactWriteItems (the gate and the action's audit record),
    // the step's second after the decision's.
    const { result, world } = await replay(scenario('07-unsupported-image.json'), {
      faults: [
        {
          step: 1,
          fail: { operation: 'TransactWriteItems', error: 'ThrottlingException', times: 1, skip: 1 },
        },
      ],
      afterSteps: async (control) => {
        control.world.clearFailures();
        await control.sweepUntilQuiet({ maxSweeps: 5 });
      },
    });
    expect(world.calls.filter((c) => c.operation === 'TransactWriteItems' && c.injected)).toHaveLength(1);
    expect(result.messages).toHaveLength(1);
    expect(result.gates[0]).toMatchObject({ state: 'ACTED', outcome: 'ESCALATE', notifications: 1 });
  });

  it('an approval of a pipeline the account does not have is stale, not thrown until it is dead-lettered', async () => {
    // GetPipelineState and ListActionExecutions answer PipelineNotFoundException, which no retry changes:
    // approval-started threw it three times and the event went to the dead-letter queue.
    const base = scenario('01-clean-image-approved.json');
    const loaded: LoadedScenario = {
      ...base,
      scenario: ScenarioSchema.parse({ ...base.scenario, steps: [{ at: '0s', sweep: true }], expect: [] }),
    };
    const ghost = {
      pipeline: 'deleted-pipeline',
      stage: 'Deploy',
      action: 'TollgateApproval',
      executionId: '0000000a-5c4d-4e6f-8a9b-0c1d2e3f4a5b',
      actionExecutionId: 'b1b3c7d2-4b0e-4d5f-9a51-0c1d2e3f4a5b',
    };
    const { result, world } = await replay(loaded, {
      afterSteps: async (control) => {
        await control.deliver(actionEvent(control.world, ghost, 'STARTED'));
      },
    });
    const started = result.deliveries.filter((d) => d.function === 'approval-started');
    expect(started).toEqual([expect.objectContaining({ outcome: 'ok', attempts: 1 })]);
    const gate = result.gates.find((g) => g.pipeline === 'deleted-pipeline') as GateView;
    expect(gate.state).toBe('STALE');
    expect(gate.staleReason).toMatch(/no stage Deploy with action TollgateApproval/);
    expect(world.calls.some((c) => c.operation === 'PutApprovalResult')).toBe(false);
  });

  it('a policy with an alias bomb is refused with a line and column, as every other policy error', () => {
    // Each level copies the one before nine times: 10, 91, 820, 7,381, 66,430 values; the first alias of
    // the last line takes what aliases copy past the limit (a smaller nest of the same shape is only a
    // policy of unknown keys now: the limit counts values, not uses of an anchor).
    const text = [
      'version: 1',
      'name: bomb',
      'a: &a ["x","x","x","x","x","x","x","x","x"]',
      'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]',
      'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]',
      'd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]',
      'e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]',
      'f: [*e,*e,*e,*e,*e,*e,*e,*e,*e]',
    ].join('\n');
    let error: unknown;
    try {
      parsePolicy(text, 'bomb.yaml');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).problems[0]).toMatchObject({
      file: 'bomb.yaml',
      line: 8,
      column: 5,
      path: 'f[0]',
    });
    // The problem in words, without an exception's class (it once said "got ReferenceError: …").
    expect((error as InputError).message).toBe(
      `bomb.yaml:8:5: f[0]: expected at most ${MAX_ALIAS_EXPANSIONS} alias expansions (a limit against alias bombs: each *alias counts every value its &anchor marks, a list of 2 counting 3; write repeated values out, or use fewer or smaller anchors); got more: the alias *e here takes the count past ${MAX_ALIAS_EXPANSIONS}`,
    );
  });
});
