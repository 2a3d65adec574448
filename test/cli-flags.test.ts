import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers.js';

/*
 * What every command does with its options: one that takes a value refuses a second (as `evaluate` always
 * did), a scenario without expectations is not said to meet them, and `demo` replays the package's scenarios
 * whatever the working folder holds.
 */

const tmp = mkdtempSync(join(tmpdir(), 'tollgate-flags-'));
let stores = 0;

interface Result {
  status: number | null;
  stdout: string;
  stderr: string;
}

// No AWS reachable: a command that ran instead of refusing its options (a regression) fails fast.
const ENV = {
  ...process.env,
  NO_COLOR: '1',
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  AWS_REGION: 'eu-west-1',
  AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
  AWS_SECRET_ACCESS_KEY: 'secret',
  AWS_ENDPOINT_URL: 'http://127.0.0.1:9',
  AWS_MAX_ATTEMPTS: '1',
  AWS_EC2_METADATA_DISABLED: 'true',
};

function tollgate(args: readonly string[], cwd = ROOT): Result {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin/tollgate.js'), ...args], {
    cwd,
    encoding: 'utf8',
    env: ENV,
    timeout: 120_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const SCENARIO = 'examples/scenarios/02-critical-rejected.json';

/** Each command as run, before the option under test: what it needs besides (a scenario, a record). */
const COMMANDS: Readonly<Record<string, readonly string[]>> = {
  evaluate: ['evaluate'],
  simulate: ['simulate', SCENARIO],
  demo: ['demo'],
  'audit list': ['audit', 'list'],
  'audit show': ['audit', 'show', 'payments-api#1'],
  'audit verify': ['audit', 'verify'],
  'audit export': ['audit', 'export'],
  'audit archive': ['audit', 'archive'],
};

/** Options --help does not list (tests and tuning), refused twice all the same. */
const HIDDEN: Readonly<Record<string, readonly string[]>> = {
  'audit list': ['--page-size', '--now'],
  'audit export': ['--page-size', '--now'],
  'audit archive': ['--now'],
};

/** Repeatable on purpose: several pages of one findings export. */
const REPEATABLE = new Set(['evaluate --findings']);

/** Two values each valid alone, so that the refusal is the second's being there, not its content. */
function valuesOf(command: string, option: string): [string, string] {
  switch (option) {
    case '--format':
      if (command === 'audit list') return ['table', 'json'];
      if (command === 'audit export') return ['jsonl', 'csv'];
      return ['json', 'text'];
    case '--order':
      return ['newest', 'oldest'];
    case '--outcome':
      return ['REJECT', 'APPROVE'];
    case '--type':
      return ['decision', 'action'];
    case '--state':
      return ['SUCCEEDED', 'FAILED'];
    case '--log-level':
      return ['INFO', 'DEBUG'];
    case '--limit':
    case '--page-size':
      return ['1', '2'];
    case '--now':
      return ['2026-11-25T12:00:00Z', '2026-11-26T12:00:00Z'];
    case '--repository':
      return ['payments/api', 'billing/api'];
    case '--vulnerability':
      return ['CVE-2024-45490', 'CVE-2024-45491'];
    case '--digest':
      return [`sha256:${'a'.repeat(64)}`, `sha256:${'b'.repeat(64)}`];
    case '--bucket':
      return ['s3://archive-a', 's3://archive-b'];
    case '--store':
      return [join(tmp, 'store-a'), join(tmp, 'store-b')];
    case '--since':
    case '--until':
      return ['2026-11-01', '2026-11-02'];
    default:
      return ['a', 'b'];
  }
}

/** The options of a command that take a value, as its --help lists them (`  -p, --policy <file>`). */
function valueOptions(command: string): string[] {
  const help = tollgate([...COMMANDS[command]!, '--help']);
  expect(help.status).toBe(0);
  const listed = [...help.stdout.matchAll(/^ {2}(?:-\w, )?(--[a-z-]+) <[^>]+>/gm)].map((m) => m[1]!);
  return [...listed, ...(HIDDEN[command] ?? [])].filter((o) => !REPEATABLE.has(`${command} ${o}`));
}

const CASES = Object.keys(COMMANDS).flatMap((command) =>
  valueOptions(command).map((option) => [command, option] as const),
);

describe('an option that takes one value, given twice, is refused by every command', () => {
  it('the options found are the ones the review named (the listing from --help is not empty or cut)', () => {
    const of = (command: string) => CASES.filter(([c]) => c === command).map(([, o]) => o);
    expect(of('evaluate')).toEqual(['--policy', '--pipeline', '--repository', '--now', '--format']);
    expect(of('audit list')).toEqual(
      expect.arrayContaining([
        '--pipeline',
        '--outcome',
        '--reviewer',
        '--digest',
        '--repository',
        '--since',
        '--until',
        '--vulnerability',
        '--type',
        '--state',
        '--format',
        '--order',
        '--limit',
        '--store',
        '--table',
        '--region',
        '--profile',
      ]),
    );
    expect(of('audit verify')).toEqual(expect.arrayContaining(['--pipeline', '--archive', '--format']));
    expect(of('audit export')).toEqual(expect.arrayContaining(['--pipeline', '--since', '--format']));
    expect(of('audit archive')).toEqual(
      expect.arrayContaining(['--bucket', '--pipeline', '--since', '--until']),
    );
    expect(of('simulate')).toEqual(expect.arrayContaining(['--format', '--store', '--log-level']));
    expect(of('demo')).toEqual(expect.arrayContaining(['--format', '--store', '--log-level']));
  });

  it.each(CASES)('%s %s', (command, option) => {
    const [a, b] = valuesOf(command, option);
    const args = [...COMMANDS[command]!, option, a, option, b];
    // Never the repository's own store, should the command run after all (a regression): a folder of its own.
    if (option !== '--store' && option !== '--table' && command !== 'evaluate')
      args.push('--store', join(tmp, `db${stores++}`));
    if (command === 'audit archive' && option !== '--bucket') args.push('--bucket', 's3://archive');
    const r = tollgate(args);
    expect(r.stderr).toMatch(
      new RegExp(
        `^tollgate: option '(-\\w, )?${option} <[^>]+>' argument '${b.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}' is invalid\\. given twice \\(first "${a.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}"\\); it takes one value\\n$`,
      ),
    );
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
  });

  it('a repeatable option stays so, and each option once is still taken', () => {
    const r = tollgate([
      'evaluate',
      '--policy',
      'examples/policies/baseline.yaml',
      '-f',
      'examples/findings/payments-api.list-findings.json',
      '-f',
      'examples/findings/payments-api.list-findings.json',
      '--pipeline',
      'payments-prod',
      '--format',
      'json',
      '--now',
      '2026-11-25T12:00:00Z',
    ]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(2);
  });
});

/** A copy of an example scenario that finds its policy and findings from anywhere, with `expect` as given. */
function scenarioWith(
  name: string,
  expectations: unknown[] | undefined | 'as written',
  from = SCENARIO,
  as = 'scenario.json',
): string {
  const scenario = JSON.parse(readFileSync(join(ROOT, from), 'utf8')) as Record<string, unknown>;
  scenario.policy = join(ROOT, 'examples/policies/baseline.yaml');
  const findings = (scenario.world as { findings: Record<string, { file: string }> }).findings;
  for (const source of Object.values(findings)) source.file = join(ROOT, 'examples/scenarios', source.file);
  if (expectations === undefined) delete scenario.expect;
  else if (expectations !== 'as written') scenario.expect = expectations;
  const folder = join(tmp, name);
  mkdirSync(folder, { recursive: true });
  const file = join(folder, as);
  writeFileSync(file, JSON.stringify(scenario));
  return file;
}

describe('a scenario without expectations', () => {
  it.each([
    ['no "expect"', undefined],
    ['"expect": []', []],
  ])('%s: says so, not "as expected"; JSON met is null; exit 0', (_, expectations) => {
    const file = scenarioWith(`none-${stores}`, expectations);
    const text = tollgate(['simulate', file, '--store', join(tmp, `db${stores++}`)]);
    expect(text.stderr).toBe('');
    expect(text.status).toBe(0);
    expect(text.stdout).toContain('– no expectations (the replay ran)');
    expect(text.stdout).not.toContain('as expected');

    const json = tollgate(['simulate', file, '--format', 'json', '--store', join(tmp, `db${stores++}`)]);
    expect(json.status).toBe(0);
    expect((JSON.parse(json.stdout) as { expectations: unknown }).expectations).toEqual({
      met: null,
      mismatches: [],
    });
  });

  it("in a demo, its summary line is marked neither met nor unmet; the other's still ✓", () => {
    const file = scenarioWith('none-demo', undefined, SCENARIO, 'a.json');
    scenarioWith('none-demo', 'as written', 'examples/scenarios/01-clean-image-approved.json', 'b.json');
    const r = tollgate(['demo', join(file, '..'), '--store', join(tmp, `db${stores++}`)]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('– no expectations (the replay ran)');
    expect(r.stdout).toContain('✓ as expected');
    expect(r.stdout).toMatch(/^ {2}– payments-api +CLOSED +REJECT +A critical vulnerability is rejected$/m);
    expect(r.stdout).toMatch(/^ {2}✓ billing-api +CLOSED +APPROVE /m);
  });

  it('a scenario with expectations met still says so, and met is true', () => {
    const r = tollgate(['simulate', SCENARIO, '--format', 'json', '--store', join(tmp, `db${stores++}`)]);
    expect(r.status).toBe(0);
    expect((JSON.parse(r.stdout) as { expectations: { met: unknown } }).expectations.met).toBe(true);
  });
});

describe('tollgate demo in a project with an examples/scenarios of its own', () => {
  it("replays the package's scenarios, not the working folder's", () => {
    const project = mkdtempSync(join(tmpdir(), 'tollgate-project-'));
    mkdirSync(join(project, 'examples/scenarios'), { recursive: true });
    // Another tool's example, no Tollgate scenario.
    writeFileSync(join(project, 'examples/scenarios/other-tool.json'), '{"steps": "not ours"}\n');
    const r = tollgate(['demo', '--format', 'json', '--store', join(tmp, `db${stores++}`)], project);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const files = (JSON.parse(r.stdout) as { scenarios: { file: string }[] }).scenarios.map((s) => s.file);
    expect(files).toHaveLength(10);
    for (const f of files) expect(f.startsWith(join(ROOT, 'examples/scenarios'))).toBe(true);
  });

  it('from the repository (npm start), the same 10 scenarios', () => {
    const r = tollgate(['demo', '--format', 'json', '--store', join(tmp, `db${stores++}`)]);
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout) as { scenarios: { file: string; expectations: unknown }[] };
    expect(out.scenarios).toHaveLength(10);
    for (const s of out.scenarios) expect(s.expectations, s.file).toEqual({ met: true, mismatches: [] });
  });

  it('a folder given is still replayed, relative to the working folder', () => {
    const project = mkdtempSync(join(tmpdir(), 'tollgate-project-'));
    cpSync(join(ROOT, 'examples'), join(project, 'mine'), { recursive: true });
    const r = tollgate(
      ['demo', 'mine/scenarios', '--format', 'json', '--store', join(tmp, `db${stores++}`)],
      project,
    );
    expect(r.status).toBe(0);
    const files = (JSON.parse(r.stdout) as { scenarios: { file: string }[] }).scenarios.map((s) => s.file);
    expect(files[0]).toMatch(/^mine\/scenarios\//);
  });
});
