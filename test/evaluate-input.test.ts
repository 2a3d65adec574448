import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MAX_POLICY_BYTES, parseFindingsText, parsePolicy } from '../shared/index.js';
import { SourceLocator } from '../shared/locate.js';
import { type CliResult, inputErrorOf, ROOT, tollgateCli } from './helpers.js';

type Result = CliResult;
const tollgate = tollgateCli;

const BASELINE = 'examples/policies/baseline.yaml';
const PAYMENTS = 'examples/findings/payments-api.list-findings.json';
const NOW = ['--now', '2026-11-25T12:00:00Z'];
const tmp = mkdtempSync(join(tmpdir(), 'tollgate-input-'));

function write(name: string, content: string | Buffer): string {
  const path = join(tmp, name);
  writeFileSync(path, content);
  return path;
}

const refused = inputErrorOf;

function expectError(r: Result, message: string | RegExp): void {
  expect(r.status).toBe(1);
  expect(r.stdout).toBe('');
  if (typeof message === 'string') expect(r.stderr).toContain(message);
  else expect(r.stderr).toMatch(message);
}

const PAYMENTS_TEXT = readFileSync(join(ROOT, PAYMENTS), 'utf8');

describe('duplicate keys in a findings file are refused, at the copy JSON.parse would keep', () => {
  it('a severity given twice (the last would win: CRITICAL judged LOW)', () => {
    const text = '{"findings": [\n  {"title": "CVE-1", "severity": "CRITICAL", "severity": "LOW"}\n]}';
    const e = refused(() => parseFindingsText(text, 'f.json'));
    expect(e.message).toBe(
      'f.json:2:46: findings[0].severity: expected each key once in a mapping; got duplicate key "severity"',
    );
  });

  it('a second findings list (which would empty the export)', () => {
    const text = `{"findings": [{"title": "CVE-1", "severity": "CRITICAL"}],\n "findings": []}`;
    expect(refused(() => parseFindingsText(text, 'f.json')).message).toBe(
      'f.json:2:2: findings: expected each key once in a mapping; got duplicate key "findings"',
    );
  });

  it('keys equal once their escapes are read, deep in arrays; strings with quotes and brackets do not mislead', () => {
    const text =
      '{"findings": [{"title": "a \\"}{[\\\\", "severity": "LOW"}, {"title": "x", "packageVulnerabilityDetails": {"vulnerablePackages": [{"name": "a"}, {"name": "b", "n\\u0061me": "c"}]}}]}';
    const e = refused(() => parseFindingsText(text, 'f.json'));
    expect(e.problems[0]).toMatchObject({
      path: 'findings[1].packageVulnerabilityDetails.vulnerablePackages[1].name',
      got: 'duplicate key "name"',
      line: 1,
      column: text.indexOf('"n\\u0061me"') + 1,
    });
  });

  it('a syntax error in the same text is reported first', () => {
    expect(refused(() => parseFindingsText('{"findings": [], "findings": [', 'f.json')).message).toMatch(
      /^f\.json:1:31: .*got invalid JSON \(unexpected end of file/,
    );
  });

  it('the same key in different mappings, and a BOM, are fine', () => {
    expect(() => parseFindingsText(`\ufeff${PAYMENTS_TEXT}`, 'f.json')).not.toThrow();
  });

  it('the command exits 1 instead of approving', () => {
    const dup = write(
      'dup.json',
      PAYMENTS_TEXT.replace('"severity": "CRITICAL"', '"severity": "CRITICAL", "severity": "LOW"'),
    );
    expectError(
      tollgate(['evaluate', '-p', BASELINE, '-f', dup, ...NOW]),
      /dup\.json:\d+:\d+: findings\[0\]\.severity: expected each key once in a mapping; got duplicate key "severity"\n$/,
    );
  });

  it('the locator points at the last of equal keys, the one JSON.parse keeps', () => {
    expect(new SourceLocator('{"a": 1,\n "a": 2}').locate(['a'])).toEqual({ line: 2, column: 7 });
  });
});

describe('JSON syntax errors: the real line and column, one line of message', () => {
  const problem = (text: string) => refused(() => parseFindingsText(text, 'f.json')).message;

  it('an unexpected token (V8 gives no position for it on Node 20)', () => {
    expect(problem('{"findings": [1,]}')).toBe(
      "f.json:1:17: expected a JSON findings export; got invalid JSON (unexpected ']'; expected a value (an object, a list, a string, a number, true, false or null))",
    );
    expect(problem('{\n  "findings": [\n    {"exploitAvailable": NO}\n  ]\n}')).toMatch(
      /^f\.json:3:26: expected a JSON findings export; got invalid JSON \(unexpected 'N'; .*\)$/,
    );
    expect(problem('severity,id\nHIGH,CVE-1\n')).toMatch(
      /^f\.json:1:1: .*got invalid JSON \(unexpected 's'; /,
    );
  });

  it('never V8’s snippet of the text, which can hold a line break or an escape sequence', () => {
    const message = problem(`{"findings": [\n${'x'.repeat(20)}\n\u001b[2J\n]}`);
    expect(message).toMatch(/^f\.json:2:1: .*unexpected 'x'/);
    expect(message).not.toContain('\n');
    expect(message).not.toContain('\u001b');
    const control = problem('{"findings": ["a\u001bb"]}');
    expect(control).toBe(
      'f.json:1:17: expected a JSON findings export; got invalid JSON (U+001B inside a string; expected it escaped)',
    );
  });

  it('text after the JSON value is located, without "at position"', () => {
    const message = problem('{"findings": []}\n{"findings": []}\n');
    expect(message).toBe(
      "f.json:2:1: expected a JSON findings export; got invalid JSON (unexpected '{'; expected nothing after the JSON value)",
    );
  });

  it('an unterminated document, an unterminated string, a bad escape, a bad number', () => {
    expect(problem('{"findings": [')).toMatch(
      /^f\.json:1:15: .*unexpected end of file; expected a value or '\]'/,
    );
    expect(problem('{"findings": "abc')).toMatch(/^f\.json:1:14: .*a string that never ends/);
    expect(problem('{"findings": "a\\x"}')).toMatch(/^f\.json:1:16: .*an escape JSON does not have/);
    // In a key too: the duplicate-key scan, which reads keys before the parse, leaves it to the parse.
    expect(problem('{"findings": [], "a\\x": 1}')).toMatch(/^f\.json:1:20: .*an escape JSON does not have/);
    expect(problem('{"findings": -}')).toMatch(/^f\.json:1:15: .*unexpected '}'; expected a digit/);
    expect(problem('{"findings" []}')).toMatch(/^f\.json:1:13: .*expected ':' after the key/);
    expect(problem("{'findings': []}")).toMatch(/^f\.json:1:2: .*expected a key in double quotes or '}'/);
  });
});

describe('the text report prints what came from a file escaped, never obeyed', () => {
  it('an escape sequence and a line break in a package name cannot forge the report', () => {
    const hostile = write(
      'ansi.json',
      PAYMENTS_TEXT.replace(
        '"name": "libexpat1"',
        '"name": "libexpat1\\u001b[2J\\u001b[H\\u001b[1;32mAPPROVE\\u001b[0m\\nViolations: none"',
      ),
    );
    const r = tollgate(['evaluate', '-p', BASELINE, '-f', hostile, ...NOW]);
    expect(r.status).toBe(2);
    expect(r.stdout).not.toContain('\u001b');
    expect(r.stdout.split('\n').filter((l) => l.startsWith('Violations'))).toEqual(['Violations (6)']);
    expect(r.stdout).toContain('libexpat1\\u{1b}[2J');
  });
});

describe('YAML warnings are problems too', () => {
  it('an unknown tag is refused, not dropped (`!custom advisory` would load as advisory)', () => {
    const e = refused(() => parsePolicy('version: 1\nname: x\nmode: !custom advisory\n', 'p.yaml'));
    expect(e.message).toBe(
      'p.yaml:3:7: expected a value without a YAML tag (YAML 1.2 mappings, lists and scalars); got the tag !custom',
    );
  });

  it('several documents: how many, in the words of a policy author', () => {
    const e = refused(() => parsePolicy('version: 1\nname: x\n---\nversion: 1\nname: y\n', 'p.yaml'));
    expect(e.message).toBe('p.yaml:3:1: expected one YAML document; got 2');
  });
});

describe('text that is not UTF-8 is refused, not replaced', () => {
  it('one byte-order mark is fine; a second is text the parser refuses (it was stripped twice, and approved)', () => {
    const bom = Buffer.from([0xef, 0xbb, 0xbf]);
    const once = write('bom.json', Buffer.concat([bom, Buffer.from('{"findings": []}')]));
    expect(tollgate(['evaluate', '-p', BASELINE, '-f', once, ...NOW, '--format', 'json']).status).toBe(0);
    const twice = write('bom2.json', Buffer.concat([bom, bom, Buffer.from('{"findings": []}')]));
    expectError(
      tollgate(['evaluate', '-p', BASELINE, '-f', twice, ...NOW]),
      /:1:1: expected a JSON findings export; got invalid JSON \(unexpected U\+FEFF/,
    );
  });

  it('an invalid byte in a policy, at its line and column', () => {
    const bytes = Buffer.concat([
      Buffer.from('version: 1\nname: caf'),
      Buffer.from([0xe9]),
      Buffer.from('\n'),
    ]);
    expect(refused(() => parsePolicy(bytes, 'p.yaml')).message).toBe(
      'p.yaml:2:10: expected UTF-8 text; got bytes that are not UTF-8 (0xe9 0x0a)',
    );
  });

  it('an invalid byte in a findings file', () => {
    const i = PAYMENTS_TEXT.indexOf('libexpat1');
    const bytes = Buffer.concat([
      Buffer.from(PAYMENTS_TEXT.slice(0, i)),
      Buffer.from([0xff]),
      Buffer.from(PAYMENTS_TEXT.slice(i)),
    ]);
    const line = PAYMENTS_TEXT.slice(0, i).split('\n').length;
    const column = i - PAYMENTS_TEXT.lastIndexOf('\n', i - 1);
    expectError(
      tollgate(['evaluate', '-p', BASELINE, '-f', write('bad-utf8.json', bytes), ...NOW]),
      `bad-utf8.json:${line}:${column}: expected UTF-8 text; got bytes that are not UTF-8 (0xff)\n`,
    );
  });

  it('UTF-16, with a byte order mark either way or without one', () => {
    const le = Buffer.from(PAYMENTS_TEXT, 'utf16le');
    const be = Buffer.from(le).swap16();
    for (const [name, bytes] of [
      ['le-bom.json', Buffer.concat([Buffer.from([0xff, 0xfe]), le])],
      ['be-bom.json', Buffer.concat([Buffer.from([0xfe, 0xff]), be])],
      ['le.json', le],
      ['be.json', be],
    ] as const) {
      expectError(
        tollgate(['evaluate', '-p', BASELINE, '-f', write(name, bytes), ...NOW]),
        `${name}: expected UTF-8 text; got UTF-16 text; save it as UTF-8\n`,
      );
    }
    const policy = Buffer.from(`\ufeff${readFileSync(join(ROOT, BASELINE), 'utf8')}`, 'utf16le');
    expect(refused(() => parsePolicy(policy, 'p.yaml')).message).toBe(
      'p.yaml: expected UTF-8 text; got UTF-16 text; save it as UTF-8',
    );
  });

  it('a UTF-8 byte order mark is still accepted, on policies and findings', () => {
    const policy = write('bom.yaml', `\ufeff${readFileSync(join(ROOT, BASELINE), 'utf8')}`);
    const findings = write('bom.json', `\ufeff${PAYMENTS_TEXT}`);
    expect(tollgate(['evaluate', '-p', policy, '-f', findings, ...NOW]).status).toBe(2);
  });
});

describe('every input is read within its limit', () => {
  it.runIf(existsSync('/dev/zero'))(
    'a device that never ends (/dev/zero says size 0) is refused at the limit',
    () => {
      expectError(
        tollgate(['evaluate', '-p', '/dev/zero', '-f', PAYMENTS, ...NOW]),
        `tollgate: /dev/zero: expected a policy file of at most ${MAX_POLICY_BYTES} bytes; got more than ${MAX_POLICY_BYTES} bytes\n`,
      );
    },
  );

  it("the CLI's limit for a policy is the loader's", () => {
    const big = write('big.yaml', `# ${'x'.repeat(MAX_POLICY_BYTES)}\nversion: 1\nname: x\n`);
    expectError(
      tollgate(['evaluate', '-p', big, '-f', PAYMENTS, ...NOW]),
      new RegExp(
        `expected a policy file of at most ${MAX_POLICY_BYTES} bytes; got ${MAX_POLICY_BYTES + 22} bytes`,
      ),
    );
    const stdin = tollgate(
      ['evaluate', '-p', '-', '-f', PAYMENTS, ...NOW],
      `# ${'x'.repeat(MAX_POLICY_BYTES)}\n`,
    );
    expectError(stdin, `expected a policy file of at most ${MAX_POLICY_BYTES} bytes; got more than`);
  });
});

describe('options that take one value', () => {
  it.each([
    ['-p', BASELINE, '--policy', 'examples/policies/advisory.yaml'],
    ['--pipeline', 'a', '--pipeline', 'b'],
    ['--repository', 'payments/api', '--repository', 'billing/api'],
    ['--now', '2026-11-25T12:00:00Z', '--now', '2027-01-01T00:00:00Z'],
    ['--format', 'json', '--format', 'text'],
  ])('%s given twice is refused, not the last kept', (first, a, second, b) => {
    const args = ['evaluate', '-f', PAYMENTS, first, a, second, b];
    if (first !== '-p') args.push('-p', BASELINE);
    if (first !== '--now') args.push(...NOW);
    expectError(tollgate(args), `argument '${b}' is invalid. given twice (first "${a}"); it takes one value`);
  });

  it('--format still checks its choices, and -f still takes pages', () => {
    expectError(
      tollgate(['evaluate', '-p', BASELINE, '-f', PAYMENTS, '--format', 'xml']),
      "argument 'xml' is invalid. Allowed choices are text, json.",
    );
    expect(tollgate(['evaluate', '-p', BASELINE, '-f', PAYMENTS, '-f', PAYMENTS, ...NOW]).status).toBe(2);
  });
});

describe('file names', () => {
  it('standard input given twice is refused before it is read', () => {
    expectError(
      tollgate(['evaluate', '-p', BASELINE, '-f', '-', '-f', '-', ...NOW], PAYMENTS_TEXT),
      'tollgate: <stdin>: expected "-" once at most: standard input (-) can be read only once; got "-" 2 times (--findings, --findings)',
    );
    expectError(
      tollgate(['evaluate', '-p', '-', '-f', '-', ...NOW], PAYMENTS_TEXT),
      'standard input (-) can be read only once; got "-" 2 times (--policy, --findings)',
    );
  });

  it('a standard input that cannot be read is an input error named <stdin>, not an internal error', () => {
    // Standard input open for writing only: reading it fails (EBADF), which was let through as "internal error".
    const r = spawnSync(
      'sh',
      [
        '-c',
        `exec "$0" bin/tollgate.js evaluate -p ${BASELINE} -f - --now 2026-11-25T12:00:00Z 0>/dev/null`,
        process.execPath,
      ],
      {
        cwd: ROOT,
        encoding: 'utf8',
        env: { ...process.env, NO_COLOR: '1' },
      },
    );
    expectError(
      { status: r.status, stdout: r.stdout, stderr: r.stderr },
      /^tollgate: <stdin>: expected a readable findings file; got /,
    );
    expect(r.stderr).not.toContain('internal error');
  });

  it('an empty file name says so', () => {
    expectError(
      tollgate(['evaluate', '-p', BASELINE, '-f', '', ...NOW]),
      "tollgate: '': expected a readable findings file; got an empty file name",
    );
  });
});

describe('--repository', () => {
  const ecr = JSON.parse(
    readFileSync(
      join(ROOT, 'test/fixtures/aws/describe-image-scan-findings.basic.awscli-example.json'),
      'utf8',
    ),
  ) as { imageScanFindings: { findings: Record<string, unknown>[] } & Record<string, unknown> };
  const medium = ecr.imageScanFindings.findings[0]!;
  const critical = { ...medium, name: 'CVE-2024-9999', severity: 'CRITICAL' };
  const answer = (repositoryName: string, findings: unknown[], more?: string) =>
    JSON.stringify({
      ...ecr,
      repositoryName,
      imageScanFindings: {
        ...ecr.imageScanFindings,
        findings,
        findingSeverityCounts: { MEDIUM: 1, CRITICAL: 1 },
      },
      ...(more === undefined ? {} : { nextToken: more }),
    });

  it("picking one repository of several: its first page is not made whole by another repository's answer", () => {
    const a1 = write('a-page1.json', answer('team/a', [medium], 'page2-token'));
    const b = write('b-full.json', answer('team/b', [medium, critical]));
    // Judged, team/a's MEDIUM alone approved (exit 0), its CRITICAL on the page not given.
    expectError(
      tollgate(['evaluate', '-p', BASELINE, '-f', a1, '-f', b, '--repository', 'team/a', ...NOW]),
      /a-page1\.json:\d+:\d+: nextToken: expected every page of the export/,
    );
    expectError(tollgate(['evaluate', '-p', BASELINE, '-f', a1, ...NOW]), 'nextToken: expected every page');
  });

  it("on findings of one other repository: refused, not judged with that repository's exceptions", () => {
    const orders = write('orders.json', PAYMENTS_TEXT.replaceAll('payments/api', 'orders/worker'));
    expectError(
      tollgate(['evaluate', '-p', BASELINE, '-f', orders, '--repository', 'payments/api', ...NOW]),
      /^tollgate: .*orders\.json:\d+:\d+: findings\[0\]\.resources\[0\]\.details\.awsEcrContainerImage\.repositoryName: expected the findings of "payments\/api" \(--repository\), which names the repository of findings that name none, or picks one of several; got findings of orders\/worker\n$/,
    );
    // Naming their own repository, they are judged.
    expect(
      tollgate(['evaluate', '-p', BASELINE, '-f', orders, '--repository', 'orders/worker', ...NOW]).status,
    ).not.toBe(1);
  });

  it("pages of one Inspector export across repositories: a last page holding only the others' findings is its last page", () => {
    const raw = JSON.parse(PAYMENTS_TEXT) as { findings: Record<string, unknown>[] };
    const elsewhere = (f: Record<string, unknown>) =>
      JSON.parse(JSON.stringify(f).replaceAll('payments/api', 'orders/api')) as Record<string, unknown>;
    const [mine, theirs, last] = raw.findings;
    const p1 = write(
      'x-page1.json',
      JSON.stringify({ findings: [mine, elsewhere(theirs!)], nextToken: 'TOKEN1' }),
    );
    const p2 = write('x-page2.json', JSON.stringify({ findings: [elsewhere(last!)] }));
    // Every page given: judged (it was refused as missing the last page, which held only orders/api's).
    const r = tollgate([
      'evaluate',
      '-p',
      BASELINE,
      '-f',
      p1,
      '-f',
      p2,
      '--repository',
      'payments/api',
      ...NOW,
    ]);
    expect(r.status, r.stderr).not.toBe(1);
    expect(r.stderr).toContain('2 finding(s) of other repositories were left out');
    expectError(
      tollgate(['evaluate', '-p', BASELINE, '-f', p1, '--repository', 'payments/api', ...NOW]),
      /x-page1\.json:\d+:\d+: nextToken: expected every page of the export/,
    );
  });

  it('an ECR answer whose rows name another repository: held to its counts, never approved on nothing', () => {
    // moto's answer of reponame, whose rows name prod/cp/motoserver, counts MEDIUM 1 and UNTRIAGED 1.
    const moto = 'test/fixtures/aws/describe-image-scan-findings.enhanced.moto-fixture.json';
    expectError(
      tollgate(['evaluate', '-p', BASELINE, '-f', moto, '--repository', 'reponame', ...NOW]),
      /imageScanFindings\.findingSeverityCounts: expected a findings list holding every finding the response counts.*; got MEDIUM 0 listed of 1 counted, UNTRIAGED 0 listed of 1 counted\n$/,
    );
    expectError(
      tollgate(['evaluate', '-p', BASELINE, '-f', moto, '--repository', 'prod/cp/motoserver', ...NOW]),
      /repositoryName: expected the findings of "prod\/cp\/motoserver" \(--repository\): it is named only by findings inside ECR answers of other repositories.*; got ECR answers of reponame\n$/,
    );
  });
});
