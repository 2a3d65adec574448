import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type GateKey, gateId } from '../shared/gate/model.js';
import { parsePolicy } from '../shared/policy/load.js';
import { type LoadedScenario, loadScenario } from '../simulator/scenario.js';

/*
 * The example scenarios the suite replays, and what it needs to know about each beyond the scenario itself:
 * which gate an approval token belongs to (to count actions per gate), the secrets and payloads that must
 * never reach a log, and the policy's wait (which bounds the sweeps to quiescence).
 */

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const SCENARIO_DIR = join(ROOT, 'examples', 'scenarios');

export interface SuiteScenario {
  readonly name: string;
  readonly file: string;
  readonly loaded: LoadedScenario;
  /** Approval token → the gate it belongs to (world approvals and superseding executions). */
  readonly gateOfToken: ReadonlyMap<string, GateKey>;
  /** Finding descriptions and ARNs of every findings document the scenario names: never to be logged. */
  readonly payloads: readonly string[];
  readonly waitMinutes: number;
}

type Json = Record<string, unknown>;

function isJson(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function exampleScenarios(dir = SCENARIO_DIR): SuiteScenario[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json') || f.endsWith('.yaml'))
    .sort()
    .map((f) => suiteScenario(join(dir, f)));
}

export function suiteScenario(file: string): SuiteScenario {
  const loaded = loadScenario(file);
  const { scenario } = loaded;
  const gateOfToken = new Map<string, GateKey>();
  const approvals = [
    ...scenario.world.approvals,
    ...scenario.steps.flatMap((s) => (s.supersede ? [s.supersede] : [])),
  ];
  for (const a of approvals) {
    if (a.token) {
      gateOfToken.set(a.token, {
        pipeline: a.pipeline,
        executionId: a.executionId,
        stage: a.stage,
        action: a.action,
      });
    }
  }
  const payloads = new Set<string>();
  for (const doc of loaded.findingsFiles.values()) {
    for (const f of findingsOf(doc)) {
      if (!isJson(f)) continue;
      if (typeof f.description === 'string' && f.description.length >= 16) payloads.add(f.description);
      if (typeof f.findingArn === 'string') payloads.add(f.findingArn);
    }
  }
  let waitMinutes = 30;
  try {
    waitMinutes = parsePolicy(readFileSync(loaded.policyFile), loaded.policyFile).policy.settings.scan
      .waitMinutes;
  } catch {
    // A broken policy escalates at once; the default wait bounds the sweeps well enough.
  }
  return {
    name: file
      .split('/')
      .pop()!
      .replace(/\.(json|yaml)$/, ''),
    file,
    loaded,
    gateOfToken,
    payloads: [...payloads],
    waitMinutes,
  };
}

function findingsOf(doc: unknown): unknown[] {
  if (Array.isArray(doc)) return doc;
  if (!isJson(doc)) return [];
  if (Array.isArray(doc.findings)) return doc.findings;
  const ecr = doc.imageScanFindings;
  if (isJson(ecr))
    return [
      ...(Array.isArray(ecr.findings) ? ecr.findings : []),
      ...(Array.isArray(ecr.enhancedFindings) ? ecr.enhancedFindings : []),
    ];
  return [];
}

/** The gate an approval token belongs to, or a stand-in naming the action when the token is unknown. */
export function gateOfToken(s: SuiteScenario, token: string, input: Json): string {
  const key = s.gateOfToken.get(token);
  if (key) return gateId(key);
  return `${String(input.pipelineName)}/?/${String(input.stageName)}/${String(input.actionName)}`;
}
