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
 * - a line about a gate carries its key: a line that names a gate's execution id (outside its key) has a
 *   `gate` field with that gate's id (or, for the functions that handle several gates, a `gates` list whose
 *   entries each have one, that gate's among them): a line under another gate's key is a violation;
 * - no approval token in what Tollgate sends out: SNS messages and EventBridge events (`checkPayloads`).
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
  return [...checkLines(s, replay.result.gates, replay.logs), ...checkPayloads(s, replay.world)];
}

/**
 * What Tollgate sent out of the account's control plane: no approval token in an SNS message (subject or
 * body: an escalation reaches people and their tools) nor in an EventBridge event (any rule may route it
 * anywhere). Both as the services received them (`messages`, `published`) and as requested (a call whose
 * answer was lost, or that a fault stopped, may still have left).
 */
export function checkPayloads(
  s: SuiteScenario,
  world: Pick<Replay['world'], 'messages' | 'published' | 'calls'>,
): Violation[] {
  const tokens = [...s.gateOfToken.keys()].map((t) => t.toLowerCase());
  const violations: Violation[] = [];
  const look = (what: string, value: unknown) => {
    const text = (JSON.stringify(value) ?? '').toLowerCase();
    if (tokens.some((t) => text.includes(t))) {
      violations.push({
        kind: 'secret',
        detail: `an approval token in ${what}: ${text.length > 300 ? `${text.slice(0, 300)}…` : text}`,
      });
    }
  };
  for (const m of world.messages) look('an SNS message', m);
  for (const e of world.published) look('an EventBridge event', e);
  for (const c of world.calls) {
    if (c.operation === 'Publish' && c.failed) look('an SNS Publish request', c.input);
    if (c.operation === 'PutEvents' && c.failed) look('an EventBridge PutEvents request', c.input);
  }
  return violations;
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
    // The gates the line names (their execution ids), outside its own gate key(s).
    const { gate: _gate, gates: _gates, ...rest } = parsed;
    const text = JSON.stringify(rest);
    const named = gates.filter((g) => text.includes(g.executionId));
    if (named.length > 0) {
      if (!carriesGate(parsed)) add(`names gate ${named[0]!.id} without a gate key`, line);
      else {
        // The key must be the right one: one of the gates the line is about, not another's.
        const carried = carriedGates(parsed);
        if (!named.some((g) => carried.includes(g.id))) {
          add(`names gate ${named[0]!.id} under another gate's key (${carried.join(', ')})`, line);
        }
      }
    }
  }
  return violations;
}

function carriedGates(line: Json): string[] {
  const ids: string[] = [];
  if (typeof line.gate === 'string') ids.push(line.gate);
  if (Array.isArray(line.gates)) {
    for (const g of line.gates) if (isJson(g) && typeof g.gate === 'string') ids.push(g.gate);
  }
  return ids;
}

/** The line carries a gate key: a `gate` field, or a `gates` list whose every entry has one. */
function carriesGate(line: Json): boolean {
  if (typeof line.gate === 'string' && line.gate !== '') return true;
  const list = line.gates;
  return Array.isArray(list) && list.length > 0 && list.every((g) => isJson(g) && typeof g.gate === 'string');
}
