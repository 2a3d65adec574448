import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers.js';

// `tollgate simulate` and `tollgate demo`, spawned as a user runs them, each on its own store folder.
const tmp = mkdtempSync(join(tmpdir(), 'tollgate-sim-'));
let stores = 0;

function tollgate(args: string[]) {
  const r = spawnSync(
    process.execPath,
    [join(ROOT, 'bin/tollgate.js'), ...args, '--store', join(tmp, `db${stores++}`)],
    {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...process.env, NO_COLOR: '1' },
    },
  );
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface GateJson {
  pipeline: string;
  executionId: string;
  stage: string;
  action: string;
  state: string;
  outcome: string | null;
  approvalResult: { status: string; summary: string } | null;
  notifications: number;
  decision: { outcome: string; policy: { name: string } } | null;
}

const ESCALATED = 'examples/scenarios/03-fixable-high-escalated-then-approved.json';

describe('tollgate simulate', () => {
  it('--format json prints one object with a gates array carrying the documented fields', () => {
    const r = tollgate(['simulate', ESCALATED, '--format', 'json']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout) as { gates: GateJson[]; expectations: { met: boolean } };
    expect(out.expectations.met).toBe(true);
    expect(out.gates).toHaveLength(1);
    const gate = out.gates[0]!;
    expect(gate).toMatchObject({
      pipeline: 'orders-worker',
      stage: 'Deploy',
      action: 'TollgateApproval',
      state: 'CLOSED',
      outcome: 'ESCALATE',
      approvalResult: null,
      notifications: 1,
    });
    expect(gate.executionId).toMatch(/^[0-9a-f-]{36}$/);
    expect(gate.decision?.outcome).toBe('ESCALATE');
    expect(gate.decision?.policy.name).toBe('baseline');
  });

  it('the text format shows the timeline and the outcome', () => {
    const r = tollgate(['simulate', 'examples/scenarios/02-critical-rejected.json']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('▶ A critical vulnerability is rejected');
    expect(r.stdout).toMatch(/\+55s\s+decided REJECT/);
    expect(r.stdout).toContain('sent Rejected to CodePipeline');
    expect(r.stdout).toContain('✓ as expected');
  });

  it('text from a findings file is printed escaped: an escape sequence cannot print a forged outcome', () => {
    // A recorded run's export can hold anything: an id that clears the line and prints APPROVE in its place.
    const scenario = JSON.parse(
      readFileSync(join(ROOT, 'examples/scenarios/02-critical-rejected.json'), 'utf8'),
    ) as {
      policy: string;
      world: { findings: Record<string, { file: string }> };
      steps: { scan?: { counts: Record<string, number> } }[];
    };
    const [digest, source] = Object.entries(scenario.world.findings)[0]!;
    const findingsFile = join(ROOT, 'examples/scenarios', source.file);
    const export_ = JSON.parse(readFileSync(findingsFile, 'utf8')) as {
      findings: { severity: string; packageVulnerabilityDetails: { vulnerabilityId: string } }[];
    };
    // The CRITICAL alone: the summary names the ids of one rule's findings.
    export_.findings = export_.findings.filter((f) => f.severity === 'CRITICAL');
    for (const step of scenario.steps) if (step.scan) step.scan.counts = { CRITICAL: 1, TOTAL: 1 };
    const forged = '\u001b[2K\r\nAPPROVE by policy baseline: no violations\u001b[8m';
    for (const f of export_.findings) f.packageVulnerabilityDetails.vulnerabilityId += forged;
    const dir = mkdtempSync(join(tmp, 'forged-'));
    writeFileSync(join(dir, 'findings.json'), JSON.stringify(export_));
    scenario.world.findings[digest] = { file: join(dir, 'findings.json') };
    scenario.policy = join(ROOT, 'examples/scenarios', scenario.policy);
    writeFileSync(join(dir, 'scenario.json'), JSON.stringify(scenario));

    const r = tollgate(['simulate', join(dir, 'scenario.json')]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/summary +REJECT by policy baseline: .*\\u\{1b\}\[2K\\u\{d\}\\u\{a\}APPROVE/);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: finding them is the point
    expect(r.stdout).not.toMatch(/[\u001b\r]/);
    expect(r.stdout.split('\n').filter((l) => l.startsWith('APPROVE'))).toEqual([]);
  });

  it('exits 4 and names the difference when a gate ends otherwise than the scenario expects', () => {
    const scenario = JSON.parse(readFileSync(join(ROOT, ESCALATED), 'utf8')) as Record<string, unknown>;
    const executionId = '00000003-5c4d-4e6f-8a9b-0c1d2e3f4a5b';
    scenario.policy = join(ROOT, 'examples/policies/baseline.yaml');
    scenario.expect = [{ executionId, outcome: 'APPROVE' }];
    const findings = (scenario.world as { findings: Record<string, { file: string }> }).findings;
    for (const source of Object.values(findings)) source.file = join(ROOT, 'examples/scenarios', source.file);
    const file = join(tmp, 'unmet.json');
    writeFileSync(file, JSON.stringify(scenario));
    const r = tollgate(['simulate', file]);
    expect(r.status).toBe(4);
    expect(r.stdout).toContain(`✗ ${executionId}: expected outcome APPROVE; got ESCALATE`);
  });

  it('a malformed scenario is an input error naming the file, line, column and key (exit 1, nothing on stdout)', () => {
    const file = join(tmp, 'bad.yaml');
    writeFileSync(file, 'name: bad\npolicy: p.yaml\nsteps:\n  - at: 5 minutes\n    sweep: true\n');
    const r = tollgate(['simulate', file]);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`${file}:4:9: steps[0].at: expected`);
  });

  it('a policy file that is not there, or a file as --store, is an input error (exit 1), not a replay', () => {
    const scenario = JSON.parse(readFileSync(join(ROOT, ESCALATED), 'utf8')) as { policy: string };
    scenario.policy = '../policies/nope.yaml';
    // Beside a copy of the example findings, which the scenario names by relative paths.
    cpSync(join(ROOT, 'examples/findings'), join(tmp, 'ex/findings'), { recursive: true });
    mkdirSync(join(tmp, 'ex/scenarios'), { recursive: true });
    const file = join(tmp, 'ex/scenarios/no-policy.json');
    writeFileSync(file, JSON.stringify(scenario));
    const r = tollgate(['simulate', file]);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(
      /no-policy\.json: policy: expected a policy file \(relative to the scenario\); got .*nope\.yaml: no such file/,
    );

    const aFile = join(tmp, 'a-file');
    writeFileSync(aFile, '');
    const s = spawnSync(
      process.execPath,
      [join(ROOT, 'bin/tollgate.js'), 'simulate', ESCALATED, '--store', aFile],
      {
        cwd: ROOT,
        encoding: 'utf8',
      },
    );
    expect(s.status).toBe(1);
    expect(s.stderr).toContain(`${aFile}: expected a folder for the local store (--store); got a file`);
  });

  it("a scenario file that is not there, or a folder, is said as evaluate says it, not in Node's words", () => {
    const missing = tollgate(['simulate', 'ex/nope.json']);
    expect(missing.status).toBe(1);
    expect(missing.stdout).toBe('');
    expect(missing.stderr).toBe(
      'tollgate: ex/nope.json: expected a readable scenario file; got no such file\n',
    );
    const folder = tollgate(['simulate', 'examples/scenarios']);
    expect(folder.status).toBe(1);
    expect(folder.stderr).toBe(
      'tollgate: examples/scenarios: expected a readable scenario file; got a directory\n',
    );
  });

  it('a step must say exactly one thing', () => {
    const file = join(tmp, 'two.json');
    writeFileSync(
      file,
      JSON.stringify({
        name: 'x',
        policy: 'p.yaml',
        steps: [{ sweep: true, fail: { operation: 'ListFindings' } }],
      }),
    );
    const r = tollgate(['simulate', file]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('exactly one of approvalStarted');
  });
});

describe('tollgate demo (npm start)', () => {
  it('replays every example scenario and meets every expectation', () => {
    const r = tollgate(['demo', '--format', 'json']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout) as {
      scenarios: { file: string; gates: GateJson[]; expectations: { met: boolean } }[];
    };
    expect(out.scenarios.length).toBeGreaterThanOrEqual(8);
    for (const s of out.scenarios) expect(s.expectations, s.file).toEqual({ met: true, mismatches: [] });
    const states = out.scenarios.flatMap((s) => s.gates.map((g) => `${g.state}/${g.outcome}`));
    for (const want of [
      'CLOSED/APPROVE',
      'CLOSED/REJECT',
      'CLOSED/ESCALATE',
      'ACTED/ESCALATE',
      'STALE/null',
    ]) {
      expect(states).toContain(want);
    }
  });
});

describe('tollgate demo of a folder whose scenarios make the same gate', () => {
  it('refuses them before replaying anything, naming both files and the gate', () => {
    // A copied example keeps its executionId: the copy would be judged by the original's gate.
    const folder = join(tmp, 'copies/scenarios');
    mkdirSync(folder, { recursive: true });
    cpSync(join(ROOT, 'examples/findings'), join(tmp, 'copies/findings'), { recursive: true });
    cpSync(join(ROOT, 'examples/policies'), join(tmp, 'copies/policies'), { recursive: true });
    const original = readFileSync(join(ROOT, 'examples/scenarios/01-clean-image-approved.json'), 'utf8');
    writeFileSync(join(folder, 'a.json'), original);
    writeFileSync(join(folder, 'b.json'), original);
    const r = tollgate(['demo', folder]);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    const gate = 'billing-api/00000001-5c4d-4e6f-8a9b-0c1d2e3f4a5b/Deploy/TollgateApproval';
    expect(r.stderr).toContain(
      `${join(folder, 'b.json')}: world.approvals[0]: expected a gate no other scenario of this run makes; ${join(folder, 'a.json')} (world.approvals[0]) makes ${gate} too; got ${gate}`,
    );
  });
});

describe('tollgate demo, run from another folder than the repository', () => {
  it("finds the package's own scenarios, and names the store as it was given", () => {
    // The built command runs from dist/chunks/: the package's examples are found above it, not in dist/.
    const cwd = mkdtempSync(join(tmpdir(), 'tollgate-elsewhere-'));
    const store = join(tmp, 'elsewhere-db');
    const r = spawnSync(process.execPath, [join(ROOT, 'bin/tollgate.js'), 'demo', '--store', store], {
      cwd,
      encoding: 'utf8',
      env: { ...process.env, NO_COLOR: '1' },
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('▶ A critical vulnerability is rejected');
    // Outside the working folder: the scenario's path whole, not ../../…
    expect(r.stdout).toContain(join(ROOT, 'examples/scenarios/02-critical-rejected.json'));
    expect(r.stdout).not.toContain('../');
    expect(r.stdout).toContain(`The store is in ${store} (dynalite)`);
  });
});
