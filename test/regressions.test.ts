import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalDynamo, startLocalDynamo } from '../adapters/dynamodb/local.js';
import { ensureTable } from '../adapters/dynamodb/table.js';
import { runScenario, type SimulationOptions, type SimulationResult } from '../simulator/run.js';
import { type LoadedScenario, loadScenario } from '../simulator/scenario.js';
import type { World } from '../simulator/world.js';
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
    const { result, world } = await replay(scenario('07-unsupported-image.json'), {
      faults: [{ step: 1, fail: { operation: 'PutItem', error: 'ThrottlingException', times: 1, skip: 1 } }],
      afterSteps: async (control) => {
        control.world.clearFailures();
        await control.sweepUntilQuiet({ maxSweeps: 5 });
      },
    });
    expect(world.calls.filter((c) => c.operation === 'PutItem' && c.injected)).toHaveLength(1);
    expect(result.messages).toHaveLength(1);
    expect(result.gates[0]).toMatchObject({ state: 'ACTED', outcome: 'ESCALATE', notifications: 1 });
  });
});
