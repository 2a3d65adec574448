import { type GateKey, gateId } from '../shared/gate/model.js';
import type { Violation } from './invariants.js';
import type { Replay } from './replay.js';
import type { SuiteScenario } from './scenarios.js';

/*
 * Secrets and data in the functions' logs (every line they wrote during a replay, at DEBUG):
 *
 * - every line is one JSON object (structured, as CloudWatch Logs Insights reads it);
 * - no approval token of the scenario appears, in any case (the gate stores only its hash);
 * - nothing that looks like a credential: an access key id (AKIA…/ASIA…), a secret access key or session
 *   token field;
 * - no finding payload: no finding's description nor its ARN (the logs say how many, not what);
 * - a line about a gate carries its key: a line that names a gate's execution id has a `gate` field with that
 *   gate's id (or, for the functions that handle several gates, a `gates` list whose entries each have it).
 */

export interface LogFacts {
  readonly lines: number;
  readonly violations: number;
}

const ACCESS_KEY = /\b(AKIA|ASIA)[0-9A-Z]{16}\b/;
const SECRET_FIELD = /secretAccessKey|aws_secret_access_key|sessionToken|x-amz-security-token/i;

type Json = Record<string, unknown>;

function isJson(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function checkLogs(s: SuiteScenario, replay: Replay): Violation[] {
  return checkLines(s, replay.result.gates, replay.logs);
}

/** The checks above, on `lines` written while the gates `about` (and only they) were handled. */
export function checkLines(
  s: SuiteScenario,
  about: readonly GateKey[],
  lines: readonly string[],
): Violation[] {
  const violations: Violation[] = [];
  const tokens = [...s.gateOfToken.keys()].map((t) => t.toLowerCase());
  const gates = about.map((g) => ({ id: gateId(g), executionId: g.executionId }));
  const add = (detail: string, line: string) =>
    violations.push({
      kind: 'log',
      detail: `${detail}: ${line.length > 300 ? `${line.slice(0, 300)}…` : line}`,
    });

  for (const line of lines) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      add('not a JSON line', line);
      continue;
    }
    if (!isJson(parsed)) {
      add('not a JSON object', line);
      continue;
    }
    const lower = line.toLowerCase();
    if (tokens.some((t) => lower.includes(t))) add('an approval token', line);
    if (ACCESS_KEY.test(line) || SECRET_FIELD.test(line)) add('a credential', line);
    const payload = s.payloads.find((p) => line.includes(p));
    if (payload !== undefined) add(`a finding payload (${payload.slice(0, 40)})`, line);
    for (const g of gates) {
      if (!line.includes(g.executionId)) continue;
      if (!carriesGate(parsed)) add(`names gate ${g.id} without a gate key`, line);
    }
  }
  return violations;
}

/** The line carries a gate key: a `gate` field, or a `gates` list whose every entry has one. */
function carriesGate(line: Json): boolean {
  if (typeof line.gate === 'string' && line.gate !== '') return true;
  const list = line.gates;
  return Array.isArray(list) && list.length > 0 && list.every((g) => isJson(g) && typeof g.gate === 'string');
}
