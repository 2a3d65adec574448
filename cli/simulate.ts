import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { styleText } from 'node:util';
import { DeleteTableCommand, waitUntilTableNotExists } from '@aws-sdk/client-dynamodb';
import { type LocalDynamo, startLocalDynamo } from '../adapters/dynamodb/local.js';
import { ensureTable } from '../adapters/dynamodb/table.js';
import { InputError, type InputProblem } from '../shared/errors.js';
import { type GateView, runScenario, type SimulationResult } from '../simulator/run.js';
import { type LoadedScenario, loadScenario, scenarioGateKeys } from '../simulator/scenario.js';
import { printableLine } from './audit-format.js';
import { SIMULATE_EXIT } from './exit.js';
import { TABLE_NAME } from './local-store.js';

export interface SimulateOptions {
  readonly scenarios: readonly string[];
  readonly format: 'text' | 'json';
  /** The embedded store's folder (dynalite, persisted): `tollgate audit` reads it afterwards. */
  readonly store: string;
  /** Keep what the store holds instead of starting the replay from an empty table. */
  readonly keep: boolean;
  readonly color: boolean;
  readonly logLevel: 'SILENT' | 'DEBUG' | 'INFO' | 'WARN' | 'ERROR';
  /** `demo`: one JSON object for all scenarios, with a `scenarios` array. */
  readonly many: boolean;
}

/**
 * A replay and how many expectations its scenario has: with none, "met" would claim a check that was never
 * made (the replay ran, and nothing was compared).
 */
interface Replayed extends SimulationResult {
  readonly expectations: number;
}

/** Replays scenarios through the handlers on the embedded store; returns what to print and the exit status. */
export async function runSimulate(options: SimulateOptions): Promise<{ stdout: string; exitCode: number }> {
  // Read every scenario first: a typo in the fifth file is reported before anything runs.
  const loaded = options.scenarios.map((file) => loadScenario(file));
  refuseSharedGates(loaded);
  if (existsSync(options.store) && !statSync(options.store).isDirectory()) {
    throw new InputError([
      { file: options.store, path: '', expected: 'a folder for the local store (--store)', got: 'a file' },
    ]);
  }
  let db: LocalDynamo | undefined;
  try {
    db = await startLocalDynamo({ path: options.store });
    if (!options.keep) await resetTable(db);
    await ensureTable(db.client, TABLE_NAME);
    const results: Replayed[] = [];
    for (const scenario of loaded) {
      const result = await runScenario(scenario, {
        doc: db.client,
        tableName: TABLE_NAME,
        logLevel: options.logLevel,
      });
      results.push({ ...result, expectations: scenario.scenario.expect.length });
    }
    const unmet = results.some((r) => r.mismatches.length > 0);
    const stdout =
      options.format === 'json'
        ? `${JSON.stringify(options.many ? { scenarios: results.map(jsonOf) } : jsonOf(results[0]!), null, 2)}\n`
        : renderText(results, options);
    return { stdout, exitCode: unmet ? SIMULATE_EXIT.EXPECTATIONS_UNMET : SIMULATE_EXIT.OK };
  } finally {
    await db?.close();
  }
}

/**
 * The scenarios of one run share the store (`tollgate audit` reads them all afterwards): two that make the
 * same gate (a copied example keeps its executionId) would find each other's, and the second be judged by
 * the first's gate. Refused before anything runs.
 */
function refuseSharedGates(loaded: readonly LoadedScenario[]): void {
  const owners = new Map<string, { file: string; where: string }>();
  const problems: InputProblem[] = [];
  for (const l of loaded) {
    for (const [id, where] of scenarioGateKeys(l.scenario)) {
      const owner = owners.get(id);
      if (owner && owner.file !== l.file) {
        problems.push({
          file: l.file,
          path: where,
          expected: `a gate no other scenario of this run makes; ${owner.file} (${owner.where}) makes ${id} too`,
          got: id,
        });
      } else if (!owner) owners.set(id, { file: l.file, where });
    }
  }
  if (problems.length > 0) throw new InputError(problems);
}

async function resetTable(db: LocalDynamo): Promise<void> {
  try {
    await db.client.send(new DeleteTableCommand({ TableName: TABLE_NAME }));
    await waitUntilTableNotExists({ client: db.client, maxWaitTime: 30 }, { TableName: TABLE_NAME });
  } catch (e) {
    if ((e as Error).name !== 'ResourceNotFoundException') throw e;
  }
}

/** The scenario files of a folder, in name order (the examples are numbered). */
export function scenariosIn(folder: string): string[] {
  if (!existsSync(folder)) {
    throw new InputError([
      { file: folder, path: '', expected: 'a folder of scenario files', got: 'no such folder' },
    ]);
  }
  const files = readdirSync(folder)
    .filter((f) => /\.(json|ya?ml)$/.test(f))
    .sort()
    .map((f) => join(folder, f));
  if (files.length === 0) {
    throw new InputError([
      { file: folder, path: '', expected: 'scenario files (*.json, *.yaml)', got: 'none' },
    ]);
  }
  return files;
}

/**
 * `examples/scenarios` of the package this module was installed with, whatever the working folder: a user's
 * project may have an examples/scenarios of its own, of other tools' files, which `demo` would fail on.
 */
export function defaultScenarioFolder(): string {
  return join(packageRoot(fileURLToPath(import.meta.url)), 'examples', 'scenarios');
}

/**
 * The folder of Tollgate's own package.json, up from `from`. The depth of this module is not fixed: it runs
 * from cli/ under tsx, and from dist/ or dist/chunks/ once built (esbuild moves a module between the entry
 * and a chunk as the imports change), in the repository or under node_modules/.
 */
function packageRoot(from: string): string {
  let dir = dirname(from);
  for (;;) {
    if (isTollgatePackage(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  throw new InputError([
    {
      file: 'demo',
      path: '',
      expected: `the examples/scenarios of the tollgate package (a package.json named "tollgate" above ${dirname(from)})`,
      got: 'no such package: name a folder of scenarios (tollgate demo FOLDER)',
    },
  ]);
}

function isTollgatePackage(file: string): boolean {
  try {
    return (JSON.parse(readFileSync(file, 'utf8')) as { name?: unknown }).name === 'tollgate';
  } catch {
    return false;
  }
}

function jsonOf(r: Replayed) {
  return {
    scenario: r.scenario,
    file: r.file,
    // null: nothing to meet; a script testing `met === true` must not read a replay without checks as passed.
    expectations: { met: verdict(r), mismatches: r.mismatches },
    gates: r.gates,
    deliveries: r.deliveries,
    escalations: r.messages,
    events: r.events,
    calls: r.calls,
  };
}

// ── text ──────────────────────────────────────────────────────────────────────────────────────────

type Style = Parameters<typeof styleText>[0];

const OUTCOME_STYLE: Readonly<Record<string, Style>> = {
  APPROVE: ['bold', 'green'],
  REJECT: ['bold', 'red'],
  ESCALATE: ['bold', 'yellow'],
};

/** true every expectation met, false one not, null when the scenario has none. */
function verdict(r: Replayed): boolean | null {
  if (r.mismatches.length > 0) return false;
  return r.expectations === 0 ? null : true;
}

/**
 * Text from the scenario and its findings files (a recorded run's, anyone's) goes through this: an escape
 * sequence in a finding's id could clear a line and print a forged outcome, as in `evaluate`'s report.
 */
const line = printableLine;

function renderText(results: readonly Replayed[], options: SimulateOptions): string {
  const paint = (style: Style, text: string) => (options.color ? styleText(style, text) : text);
  const out: string[] = [];
  for (const r of results) {
    out.push(`${paint('bold', `▶ ${line(r.scenario)}`)}  ${paint('dim', line(shownPath(r.file)))}`);
    const loaded = loadScenarioStart(r);
    for (const gate of r.gates) renderGate(out, gate, loaded, paint);
    for (const d of r.deliveries.filter((x) => x.outcome !== 'ok')) {
      out.push(
        `  ${paint('dim', line(`${d.detailType}: ${d.outcome}${d.function ? ` by ${d.function}` : ''}${d.error ? ` (${d.error})` : ''}`))}`,
      );
    }
    for (const m of r.messages) out.push(`  ${paint('yellow', '✉')} escalation sent: ${line(m.subject)}`);
    const met = verdict(r);
    if (met === true) out.push(`  ${paint('green', '✓')} as expected`);
    else if (met === null) out.push(`  ${paint('dim', '–')} no expectations (the replay ran)`);
    else for (const m of r.mismatches) out.push(`  ${paint('red', '✗')} ${line(m)}`);
    out.push('');
  }
  if (results.length > 1) {
    out.push(paint('bold', 'Summary'));
    for (const r of results) {
      for (const g of r.gates) {
        const outcome = g.outcome ?? '-';
        out.push(
          `  ${mark(verdict(r), paint)} ${pad(line(g.pipeline), 18)} ${pad(g.state ?? '-', 7)} ${paint(OUTCOME_STYLE[outcome] ?? 'dim', pad(outcome, 8))} ${line(r.scenario)}`,
        );
      }
    }
    out.push('');
    out.push(
      // As given: a path made relative to the working folder (`../../abs/path`) is one the user never typed.
      `The store is in ${options.store} (dynalite); replay one scenario with: npx tollgate simulate <file> [--format json]`,
    );
  }
  return `${out.join('\n')}\n`;
}

/**
 * A file under the working folder relative to it; any other as it is, since `../../work/main/examples/…`
 * (the demo's own scenarios, run from another folder) is longer and no clearer than the absolute path.
 */
function shownPath(file: string): string {
  const rel = relative(process.cwd(), file);
  return rel === '' || rel.split(sep)[0] === '..' || isAbsolute(rel) ? file : rel;
}

function loadScenarioStart(r: SimulationResult): number {
  return Date.parse(loadScenario(r.file).scenario.start);
}

function renderGate(
  out: string[],
  g: GateView,
  start: number,
  paint: (style: Style, text: string) => string,
): void {
  out.push(
    `  ${paint('bold', line(`${g.pipeline} / ${g.stage} / ${g.action}`))}  ${paint('dim', `execution ${line(g.executionId)}`)}`,
  );
  if (g.image)
    out.push(
      `    image     ${line(`${g.image.repository}@${g.image.digest}${g.image.tags.length ? `  (${g.image.tags.join(', ')})` : ''}`)}`,
    );
  for (const t of g.timeline) out.push(`    ${paint('dim', pad(since(start, t.at), 9))} ${line(t.what)}`);
  const outcome = g.outcome ? paint(OUTCOME_STYLE[g.outcome] ?? 'bold', g.outcome) : 'no decision';
  const result = g.approvalResult
    ? `sent ${g.approvalResult.status}`
    : g.outcome === 'ESCALATE'
      ? `${g.notifications} escalation(s) sent`
      : 'no result sent';
  const reviewer = g.reviewer && !g.reviewer.tollgate ? ` · resolved by ${line(g.reviewer.identity)}` : '';
  out.push(
    `    ${paint('bold', 'result')}    ${g.state ?? 'never seen'} · ${outcome} · ${result}${reviewer}`,
  );
  if (g.decision) out.push(`    ${paint('bold', 'summary')}   ${line(g.decision.summary)}`);
  if (g.staleReason) out.push(`    ${paint('bold', 'stale')}     ${line(g.staleReason)}`);
}

function since(start: number, at: string): string {
  const s = Math.round((Date.parse(at) - start) / 1000);
  if (s < 60) return `+${s}s`;
  const m = Math.floor(s / 60);
  return s % 60 === 0 ? `+${m}m` : `+${m}m${s % 60}s`;
}

function mark(met: boolean | null, paint: (style: Style, text: string) => string): string {
  if (met === null) return paint('dim', '–');
  return met ? paint('green', '✓') : paint('red', '✗');
}

function pad(text: string, width: number): string {
  return text.length >= width ? text : text + ' '.repeat(width - text.length);
}
