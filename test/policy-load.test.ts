import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as z from 'zod';
import { expiryOf, InputError, parsePolicy } from '../shared/index.js';
import { parseYamlInput } from '../shared/yaml-input.js';

function problems(text: string, file = 'policy.yaml'): string[] {
  try {
    parsePolicy(text, file);
  } catch (e) {
    if (e instanceof InputError) return e.message.split('\n');
    throw e;
  }
  throw new Error('expected the policy to be refused');
}

const SPEC_EXAMPLE = `version: 1
name: production
mode: enforce                  # enforce | advisory
settings:
  statuses: [ACTIVE]           # finding statuses that count
  unknownSeverity: escalate    # escalate | reject | ignore
  expiringSoonDays: 14
  scan:
    waitMinutes: 30
    onTimeout: escalate
    onUnsupported: escalate
  onError: escalate
rules:
  - id: no-critical
    description: Nothing critical reaches production
    action: reject
    when: { severity: [CRITICAL] }
  - id: known-exploited
    action: reject
    when: { exploitAvailable: true, minScore: 7.0 }
  - id: fixable-high
    action: escalate
    when: { severity: [HIGH], fixAvailable: [YES, PARTIAL] }
  - id: high-past-sla
    action: reject
    when: { severity: [HIGH], olderThanDays: 30 }
  - id: likely-exploited
    action: escalate
    when: { minEpss: 0.2 }
  - id: some-mediums
    action: warn
    allow: 10
    when: { severity: [MEDIUM] }
  - id: banned
    action: reject
    when: { vulnerabilityIds: [CVE-2021-44228, CVE-2021-45046] }
exceptions:
  - id: EXC-2026-001
    vulnerabilityId: CVE-2024-6119
    packages: [openssl, libssl3t64]
    repositories: ["payments/*"]
    expires: 2027-01-31
    reason: Not reachable from the service; upgrade tracked in SEC-412
    approvedBy: jane.doe@example.com
    revokeIf: { exploitAvailable: true, minEpss: 0.5 }
`;

describe('loading', () => {
  it("loads the spec's example and fills the defaults", () => {
    const loaded = parsePolicy(SPEC_EXAMPLE, 'production.yaml');
    expect(loaded.policy.rules).toHaveLength(7);
    expect(loaded.policy.rules[5]).toMatchObject({ id: 'some-mediums', allow: 10 });
    expect(loaded.policy.rules[0]!.allow).toBe(0);
    expect(loaded.policy.exceptions[0]!.expires).toBe('2027-01-31');
    expect(loaded.sha256).toBe(createHash('sha256').update(SPEC_EXAMPLE).digest('hex'));
  });

  it('a minimal policy gets every default of the spec', () => {
    const { policy } = parsePolicy('version: 1\nname: minimal\n', 'p.yaml');
    expect(policy).toEqual({
      version: 1,
      name: 'minimal',
      mode: 'enforce',
      settings: {
        statuses: ['ACTIVE'],
        unknownSeverity: 'escalate',
        expiringSoonDays: 14,
        scan: { waitMinutes: 30, onTimeout: 'escalate', onUnsupported: 'escalate' },
        onError: 'escalate',
      },
      rules: [],
      exceptions: [],
    });
  });

  it('reads JSON policies too', () => {
    const json = JSON.stringify({ version: 1, name: 'j', rules: [{ id: 'a', action: 'warn' }] });
    expect(parsePolicy(json, 'p.json').policy.rules[0]!.when).toEqual({});
  });

  it('hashes the bytes as given (a BOM or CRLF changes the hash, not the policy)', () => {
    const crlf = 'version: 1\r\nname: x\r\n';
    const bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(crlf)]);
    const a = parsePolicy(crlf, 'a.yaml');
    const b = parsePolicy(bom, 'b.yaml');
    expect(a.policy).toEqual(b.policy);
    expect(a.sha256).not.toBe(b.sha256);
  });

  it("strict.yaml's HIGH rule says it covers every HIGH, as its condition does", () => {
    // The language has no "no fix" condition: a rule on severity alone lists the fixable HIGHs too, and the
    // decision record shows its id and description beside them.
    const { policy } = parsePolicy(
      readFileSync(new URL('../examples/policies/strict.yaml', import.meta.url)),
      'strict.yaml',
    );
    const high = policy.rules.filter(
      (r) => JSON.stringify(r.when) === JSON.stringify({ severity: ['HIGH'] }),
    );
    expect(high.map((r) => [r.id, r.action])).toEqual([['any-high', 'escalate']]);
    expect(high[0]!.description).toMatch(/^Every HIGH finding, fixable or not\b/);
  });

  it.each(readdirSync(new URL('../examples/policies', import.meta.url)))('example %s loads', (name) => {
    const bytes = readFileSync(new URL(`../examples/policies/${name}`, import.meta.url));
    expect(() => parsePolicy(bytes, name)).not.toThrow();
  });
});

describe('errors: file:line:column: path: expected …; got …', () => {
  it("the spec's example message", () => {
    const text = SPEC_EXAMPLE.replace(
      '    action: escalate\n    when: { severity: [HIGH]',
      '    action: block\n    when: { severity: [HIGH]',
    );
    expect(problems(text)).toEqual([
      'policy.yaml:22:13: rules[2].action: expected one of reject, escalate, warn; got "block"',
    ]);
  });

  it('a value out of range names the range, not only the type', () => {
    const one = (yaml: string) => problems(`version: 1\nname: x\n${yaml}\n`)[0];
    expect(one('settings: { expiringSoonDays: 5000 }')).toBe(
      'policy.yaml:3:31: settings.expiringSoonDays: expected a whole number of days from 0 to 3650; got 5000',
    );
    expect(one('settings: { scan: { waitMinutes: 0 } }')).toContain(
      'expected a whole number of minutes from 1 to 10080 (a week); got 0',
    );
    expect(one('rules: [{ id: a, action: warn, allow: -1 }]')).toContain(
      'rules[0].allow: expected a whole number of tolerated findings, 0 or more; got -1',
    );
    expect(one('rules: [{ id: a, action: warn, when: { olderThanDays: -1 } }]')).toContain(
      'expected a whole number of days, 0 or more; got -1',
    );
    expect(one(`rules: [{ id: a, action: warn, description: ${'x'.repeat(501)} }]`)).toContain(
      'expected a text of at most 500 characters',
    );
    // The type still comes first when the type is what is wrong; YAML's .nan and .inf are named as such.
    expect(one('settings: { expiringSoonDays: 1.5 }')).toContain('expected a whole number of days; got 1.5');
    expect(one('rules: [{ id: a, action: warn, when: { minScore: .nan } }]')).toContain(
      'expected a score from 0 to 10; got NaN',
    );
  });

  it('refuses a %YAML 1.1 directive, which would read 1:30 as 90 and yes as true', () => {
    expect(problems('%YAML 1.1\n---\nversion: 1\nname: x\n')).toEqual([
      'policy.yaml:1:1: expected YAML 1.2 (no %YAML directive, or %YAML 1.2); got %YAML 1.1',
    ]);
    expect(() => parsePolicy('%YAML 1.2\n---\nversion: 1\nname: x\n', 'policy.yaml')).not.toThrow();
  });

  it('an unknown key anywhere, with a suggestion', () => {
    expect(problems('version: 1\nname: x\nrules:\n  - id: a\n    action: warn\n    whenn: {}\n')).toEqual([
      'policy.yaml:6:5: rules[0].whenn: expected one of the keys id, description, action, allow, when (did you mean "when"?); got unknown key "whenn"',
    ]);
    expect(problems('version: 1\nname: x\nsettings:\n  scan:\n    waitMinute: 5\n')[0]).toBe(
      'policy.yaml:5:5: settings.scan.waitMinute: expected one of the keys waitMinutes, onTimeout, onUnsupported (did you mean "waitMinutes"?); got unknown key "waitMinute"',
    );
    expect(
      problems(
        'version: 1\nname: x\nrules: [{id: a, action: warn, when: {severity: [HIGH], fixed: true}}]\n',
      )[0],
    ).toMatch(
      /^policy\.yaml:3:\d+: rules\[0\]\.when\.fixed: expected one of the keys severity, minScore, .*; got unknown key "fixed"$/,
    );
    expect(problems('version: 1\nname: x\nexceptionz: []\n')[0]).toContain('(did you mean "exceptions"?)');
  });

  it('a missing required key points at the mapping that lacks it', () => {
    expect(problems('version: 1\nname: x\nrules:\n  - id: a\n')).toEqual([
      'policy.yaml:4:5: rules[0].action: expected one of reject, escalate, warn; got nothing (the key is missing)',
    ]);
    expect(problems('name: x\n')).toEqual([
      'policy.yaml:1:1: version: expected the policy language version 1; got nothing (the key is missing)',
    ]);
  });

  it('values out of range or of the wrong type', () => {
    const text = [
      'version: 2',
      'name: "has spaces"',
      'settings:',
      '  statuses: []',
      '  expiringSoonDays: soon',
      'rules:',
      '  - id: Bad_Id',
      '    action: warn',
      '    allow: -1',
      '    when:',
      '      minScore: 11',
      '      minEpss: 1.5',
      '      olderThanDays: 2.5',
      '      severity: [SEVERE]',
      '      fixAvailable: [MAYBE]',
      '      exploitAvailable: "yes"',
      '      packages: []',
    ].join('\n');
    expect(problems(text)).toEqual([
      'policy.yaml:1:10: version: expected the policy language version 1; got 2',
      'policy.yaml:2:7: name: expected a policy name of 1-64 characters A-Za-z, 0-9, ., _ and -; got "has spaces"',
      'policy.yaml:4:13: settings.statuses: expected at least one finding status; got an empty list',
      'policy.yaml:5:21: settings.expiringSoonDays: expected a whole number of days; got "soon"',
      'policy.yaml:7:9: rules[0].id: expected a rule id of 1-64 characters a-z, 0-9 and -; got "Bad_Id"',
      'policy.yaml:9:12: rules[0].allow: expected a whole number of tolerated findings, 0 or more; got -1',
      'policy.yaml:11:17: rules[0].when.minScore: expected a score from 0 to 10; got 11',
      'policy.yaml:12:16: rules[0].when.minEpss: expected an EPSS probability from 0 to 1; got 1.5',
      'policy.yaml:13:22: rules[0].when.olderThanDays: expected a whole number of days; got 2.5',
      'policy.yaml:14:18: rules[0].when.severity[0]: expected one of CRITICAL, HIGH, MEDIUM, LOW, INFORMATIONAL, UNTRIAGED; got "SEVERE"',
      'policy.yaml:15:22: rules[0].when.fixAvailable[0]: expected one of YES, NO, PARTIAL; got "MAYBE"',
      'policy.yaml:16:25: rules[0].when.exploitAvailable: expected true or false; got "yes"',
      'policy.yaml:17:17: rules[0].when.packages: expected at least one package name glob; got an empty list',
    ]);
  });

  it('implicit and duplicate rule ids, duplicate exception ids', () => {
    expect(problems('version: 1\nname: x\nrules:\n  - id: scan-timeout\n    action: warn\n')).toEqual([
      'policy.yaml:4:9: rules[0].id: expected a rule id other than the implicit ones (unknown-severity, scan-incomplete, scan-timeout, error), which are reserved; got "scan-timeout"',
    ]);
    // The reserved ids are refused by the id's pattern (so that the JSON Schema refuses them too); a
    // malformed id is still told so, not that it is reserved.
    expect(problems('version: 1\nname: x\nrules:\n  - id: error\n    action: warn\n')[0]).toContain(
      'rules[0].id: expected a rule id other than the implicit ones (unknown-severity, scan-incomplete, scan-timeout, error), which are reserved; got "error"',
    );
    expect(problems('version: 1\nname: x\nrules:\n  - id: Error\n    action: warn\n')).toEqual([
      'policy.yaml:4:9: rules[0].id: expected a rule id of 1-64 characters a-z, 0-9 and -; got "Error"',
    ]);
    for (const id of ['errors', 'scan-timeout-2', 'my-error']) {
      expect(() =>
        parsePolicy(`version: 1\nname: x\nrules:\n  - id: ${id}\n    action: warn\n`, 'policy.yaml'),
      ).not.toThrow();
    }
    expect(
      problems('version: 1\nname: x\nrules:\n  - {id: a, action: warn}\n  - {id: a, action: reject}\n'),
    ).toEqual(['policy.yaml:5:10: rules[1].id: expected a rule id not used by an earlier rule; got "a"']);
    const exc = (id: string) =>
      `  - {id: ${id}, vulnerabilityId: CVE-1, expires: 2027-01-01, reason: r, approvedBy: a}\n`;
    expect(problems(`version: 1\nname: x\nexceptions:\n${exc('E1')}${exc('E1')}`)[0]).toMatch(
      /^policy\.yaml:5:\d+: exceptions\[1\]\.id: expected an exception id not used by an earlier exception; got "E1"$/,
    );
  });

  it('exceptions need a reason, an approver and a real expiry; approve is never an outcome', () => {
    const base = '  - id: E\n    vulnerabilityId: CVE-1\n';
    expect(
      problems(
        `version: 1\nname: x\nexceptions:\n${base}    expires: 2027-02-30\n    reason: "  "\n    approvedBy: a\n`,
      ),
    ).toEqual([
      'policy.yaml:6:14: exceptions[0].expires: expected a real calendar date; got "2027-02-30"',
      'policy.yaml:7:13: exceptions[0].reason: expected a non-empty reason; got "  "',
    ]);
    expect(
      problems(
        `version: 1\nname: x\nexceptions:\n${base}    expires: 2027-01-31\n    reason: r\n    approvedBy: "\\t "\n`,
      ),
    ).toEqual(['policy.yaml:8:17: exceptions[0].approvedBy: expected a non-empty approvedBy; got "\\t "']);
    // Invisible characters are no reason and no approver: a zero-width space, a word joiner, a soft hyphen,
    // and below, the fillers and marks that draw nothing.
    expect(
      problems(
        `version: 1\nname: x\nexceptions:\n${base}    expires: 2027-01-31\n    reason: "\\u200B"\n    approvedBy: "\\u2060\\u00AD"\n`,
      ),
    ).toEqual([
      'policy.yaml:7:13: exceptions[0].reason: expected a non-empty reason; got "\u200B"',
      'policy.yaml:8:17: exceptions[0].approvedBy: expected a non-empty approvedBy; got "\u2060\u00AD"',
    ]);
    for (const blank of ['\u3164', '\u2800', '\u115F\u1160', '\u034F', '\uFE0F', '\uE000']) {
      const escaped = [...blank].map((c) => `\\u${c.codePointAt(0)!.toString(16).padStart(4, '0')}`).join('');
      expect(
        problems(
          `version: 1\nname: x\nexceptions:\n${base}    expires: 2027-01-31\n    reason: "${escaped}"\n    approvedBy: a\n`,
        ),
        escaped,
      ).toEqual([`policy.yaml:7:13: exceptions[0].reason: expected a non-empty reason; got "${blank}"`]);
    }
    // A lone surrogate is half a character (YAML's "\uD800" escape writes one), and shows nothing either.
    expect(
      problems(
        `version: 1\nname: x\nexceptions:\n${base}    expires: 2027-01-31\n    reason: "\\uD800"\n    approvedBy: a\n`,
      ),
    ).toEqual(['policy.yaml:7:13: exceptions[0].reason: expected a non-empty reason; got "\\ud800"']);
    // Any script's words, and a reason that is a ticket number or an emoji, still show.
    for (const shown of ['承認済み', 'JIRA-1234', '✓', 'Ärger']) {
      expect(() =>
        parsePolicy(
          `version: 1\nname: x\nexceptions:\n${base}    expires: 2027-01-31\n    reason: "${shown}"\n    approvedBy: a\n`,
          'p.yaml',
        ),
      ).not.toThrow();
    }
    // One message per problem: a value that is no date is not also "not a real calendar date".
    for (const expires of ['never', '2027-01-31T10:00:00']) {
      expect(
        problems(
          `version: 1\nname: x\nexceptions:\n${base}    expires: ${expires}\n    reason: r\n    approvedBy: a\n`,
        ),
      ).toEqual([
        `policy.yaml:6:14: exceptions[0].expires: expected a date (2027-01-31) or an ISO-8601 timestamp with a zone; got "${expires}"`,
      ]);
    }
    expect(problems('version: 1\nname: x\nsettings:\n  onError: approve\n')).toEqual([
      'policy.yaml:4:12: settings.onError: expected one of escalate, reject; got "approve"',
    ]);
    expect(
      problems(
        'version: 1\nname: x\nexceptions:\n  - id: E\n    vulnerabilityId: CVE-1\n    expires: 2027-01-01\n    reason: r\n    approvedBy: a\n    revokeIf: { olderThanDays: 3 }\n',
      )[0],
    ).toContain(
      'exceptions[0].revokeIf.olderThanDays: expected one of the keys exploitAvailable, minEpss, minScore, fixAvailable, severity',
    );
  });

  it('a zone offset out of range is named as such, not as a date that does not exist', () => {
    const policy = (expires: string) =>
      `version: 1\nname: x\nexceptions:\n  - {id: E, vulnerabilityId: CVE-1, expires: "${expires}", reason: r, approvedBy: a}\n`;
    const expiring = (expires: string) => problems(policy(expires));
    for (const expires of [
      '2027-01-31T12:00:00+99:99',
      '2027-01-31T12:00-2400',
      '2027-01-31T12:00:00+01:60',
    ]) {
      expect(expiring(expires)).toEqual([
        `policy.yaml:4:46: exceptions[0].expires: expected a zone offset of at most 23:59 (from -23:59 to +23:59); got "${expires}"`,
      ]);
    }
    // The bounds themselves are offsets that exist.
    for (const expires of ['2027-01-31T12:00:00+23:59', '2027-01-31T12:00-2359']) {
      expect(() => parsePolicy(policy(expires), 'policy.yaml')).not.toThrow();
    }
    // A day that does not exist is still a calendar problem, with a valid offset or none.
    expect(expiring('2027-02-30T12:00:00+01:00')[0]).toContain('expected a real calendar date');
    // Years 0-99 are days that exist (Date.UTC would read them as 1900-1999), as the JSON Schema says.
    expect(() => parsePolicy(policy('0099-01-01'), 'policy.yaml')).not.toThrow();
    expect(expiring('0099-02-29')[0]).toContain('expected a real calendar date');
  });

  it('an expiry takes the zone offsets --now and findings take, with or without a colon', () => {
    for (const expires of ['2027-01-31T12:00:00+0100', '2027-01-31T12:00+01:00', '2027-01-31T06:30-0430']) {
      const { policy } = parsePolicy(
        `version: 1\nname: x\nexceptions:\n  - {id: E, vulnerabilityId: CVE-1, expires: ${expires}, reason: r, approvedBy: a}\n`,
        'policy.yaml',
      );
      expect(expiryOf(policy.exceptions[0]!.expires)).toBe(Date.UTC(2027, 0, 31, 11));
    }
  });

  it("refuses YAML 1.1's typed collections and scalars, which would load as a Map, Set, Date or bytes", () => {
    // Read as JS objects with no keys of their own, each mapping below loaded as `{}`: the revokeIf gone
    // (the exception applied to an exploited finding), the settings the defaults, a rule matching everything.
    const cases: [string, string, string][] = [
      [
        'revokeIf: { exploitAvailable: true, minEpss: 0.5 }',
        'revokeIf: !!omap [{exploitAvailable: true}]',
        '!!omap',
      ],
      ['revokeIf: { exploitAvailable: true, minEpss: 0.5 }', 'revokeIf: !!set {exploitAvailable}', '!!set'],
      [
        'revokeIf: { exploitAvailable: true, minEpss: 0.5 }',
        'revokeIf: !!pairs [{exploitAvailable: true}]',
        '!!pairs',
      ],
      ['revokeIf: { exploitAvailable: true, minEpss: 0.5 }', 'revokeIf: !!binary ""', '!!binary'],
      ['expires: 2027-01-31', 'expires: !!timestamp 2027-01-31', '!!timestamp'],
      ['when: { severity: [CRITICAL] }', 'when: !!timestamp 2027-01-31', '!!timestamp'],
    ];
    for (const [from, to, tag] of cases) {
      const text = SPEC_EXAMPLE.replace(from, to);
      expect(text).not.toBe(SPEC_EXAMPLE);
      const line = text.split('\n').findIndex((l) => l.includes(to)) + 1;
      const found = problems(text);
      expect(found, to).toHaveLength(1);
      expect(found[0], to).toMatch(
        new RegExp(
          `^policy\\.yaml:${line}:\\d+: expected a value without a YAML tag .*; got the tag ${tag}$`,
        ),
      );
    }
  });

  it('YAML syntax errors and documents that are not a policy', () => {
    expect(problems('version: 1\nname: x\nrules: [\n')[0]).toMatch(
      /^policy\.yaml:\d+:\d+: expected valid YAML; got .+$/,
    );

    expect(problems('- a\n- b\n')).toEqual([
      'policy.yaml:1:1: expected a policy (a mapping with version, name, rules, …); got a list of 2',
    ]);
    expect(problems('')).toEqual([
      'policy.yaml:1:1: expected a policy (a mapping with version, name, rules, …); got null',
    ]);
  });

  it('a key given twice names its key path, as a findings file does', () => {
    expect(problems('version: 1\nname: x\nname: y\n')).toEqual([
      'policy.yaml:3:1: name: expected each key once in a mapping; got duplicate key "name"',
    ]);
    expect(
      problems('version: 1\nname: x\nrules:\n  - id: a\n    action: warn\n    action: reject\n'),
    ).toEqual([
      'policy.yaml:6:5: rules[0].action: expected each key once in a mapping; got duplicate key "action"',
    ]);
    expect(
      problems(
        'version: 1\nname: x\nrules:\n  - {id: a, action: warn}\n  - {id: b, action: warn, when: {severity: [HIGH], severity: [LOW]}}\n',
      ),
    ).toEqual([
      'policy.yaml:5:52: rules[1].when.severity: expected each key once in a mapping; got duplicate key "severity"',
    ]);
    expect(
      problems(
        '{"version": 1, "name": "x", "settings": {"scan": {"waitMinutes": 5, "waitMinutes": 6}}}\n',
        'p.json',
      ),
    ).toEqual([
      'p.json:1:69: settings.scan.waitMinutes: expected each key once in a mapping; got duplicate key "waitMinutes"',
    ]);
  });

  it('keys that load as one name are one key, however they are written', () => {
    // `1`, `1.0` and `"1"` all load as the property "1": the later value would replace the earlier unseen.
    const schema = z.object({ vars: z.record(z.string(), z.string()) });
    const read = (text: string) =>
      parseYamlInput(text, 's.yaml', schema, { what: 'a mapping', maxBytes: 1024 });
    expect(read('vars:\n  1: a\n  "2": b\n').value).toEqual({ vars: { '1': 'a', '2': 'b' } });
    for (const [text, line] of [
      ['vars:\n  1: a\n  "1": b\n', 3],
      ['vars:\n  1.0: a\n  1: b\n', 3],
      ['vars:\n  ~: a\n  "": b\n', 3],
      ['vars:\n  true: a\n  x: c\n  "true": b\n', 4],
    ] as const) {
      expect(() => read(text), text).toThrow(
        new RegExp(
          `^s\\.yaml:${line}:3: vars\\.\\S*: expected each key once in a mapping; got duplicate key `,
        ),
      );
    }
  });

  it('a second document is counted without the quadratic key check: refused as fast as one is read', () => {
    const schema = z.strictObject({ a: z.record(z.string(), z.number()) });
    const big = `a:\n${Array.from({ length: 20_000 }, (_, i) => `  k${i}: 1\n`).join('')}`;
    const time = (text: string, message: RegExp) => {
      const t0 = performance.now();
      expect(() => parseYamlInput(text, 's.yaml', schema, { what: 'a mapping', maxBytes: 1 << 22 })).toThrow(
        message,
      );
      return performance.now() - t0;
    };
    const one = Math.min(...[0, 1].map(() => time(`${big}b: 1\n`, /unknown key "b"/)));
    const two = time(`${big}---\nb: 1\n`, /^s\.yaml:20002:1: expected one YAML document; got 2$/);
    // Counting the documents with the library's own key check took 3-4x reading one (20,000 keys; 140 s at
    // 95,000); without it, 0.7-0.9x.
    expect(two / one).toBeLessThan(2);
  });

  it('an alias problem names its key path as every other message does (a null key is "")', () => {
    const schema = z.object({}).catchall(z.unknown());
    expect(() =>
      parseYamlInput('~:\n  x: *nope\n', 's.yaml', schema, { what: 'a mapping', maxBytes: 1024 }),
    ).toThrow(/^s\.yaml:2:6: x: expected an alias of an anchor set before it/);
  });

  it('a null key is placed at its own line', () => {
    expect(problems('version: 1\nname: x\n~: 1\nrules: []\n')).toEqual([
      'policy.yaml:3:1: expected one of the keys version, name, mode, settings, rules, exceptions; got unknown key ""',
    ]);
  });

  it('duplicates are found in one pass: a mapping of 20,000 keys is read in linear time', () => {
    // The library's own check compared each key with every earlier one (40,000 keys: 10.7 s, against 1.6 s).
    const keys = (n: number) =>
      `vars:\n${Array.from({ length: n }, (_, i) => `  k${i}: v\n`).join('')}  k0: again\n`;
    const schema = z.object({ vars: z.record(z.string(), z.string()) });
    const time = (n: number) => {
      const t0 = performance.now();
      expect(() =>
        parseYamlInput(keys(n), 's.yaml', schema, { what: 'a mapping', maxBytes: 1 << 22 }),
      ).toThrow(`s.yaml:${n + 2}:3: vars.k0: expected each key once in a mapping; got duplicate key "k0"`);
      return performance.now() - t0;
    };
    time(2_000);
    // Ten times the keys, measured in one run: ~5x here (fixed costs weigh on the small one); the quadratic
    // check took ~31x.
    const small = Math.min(time(2_000), time(2_000));
    const large = time(20_000);
    expect(large / small).toBeLessThan(15);
  });

  it('a YAML 1.1 merge key is said to be one (editors expand it; YAML 1.2 has none)', () => {
    const merged = (key: string) =>
      `version: 1\nname: x\nrules:\n  - &high { id: a, action: escalate }\n  - { ${key}: *high, id: b, action: reject }\n`;
    expect(problems(merged('<<'))).toEqual([
      'policy.yaml:5:7: rules[1]: expected keys written out (a merge key is YAML 1.1; Tollgate reads YAML 1.2, which has none); got the merge key <<',
    ]);
    // Quoted, it is a key like any other, and an unknown one.
    expect(problems(merged('"<<"'))[0]).toMatch(
      /^policy\.yaml:5:7: rules\[1\]\.<<: expected one of the keys/,
    );
  });

  it('an alias used as a key is refused: the parser never sees it as the key given twice', () => {
    // Loaded, the later `*k : warn` would overwrite `action: reject` unseen: a policy that reads as
    // reject would approve.
    expect(
      problems(
        'version: 1\nname: x\nrules:\n  - id: a\n    &k action: reject\n    when: {severity: [CRITICAL]}\n    *k : warn\n',
      ),
    ).toEqual([
      'policy.yaml:7:5: rules[0]: expected keys written out (an alias may be a value, never a key); got the alias *k as a key',
    ]);
    expect(problems('&m mode: enforce\nversion: 1\nname: x\n*m : advisory\n')).toEqual([
      'policy.yaml:4:1: expected keys written out (an alias may be a value, never a key); got the alias *m as a key',
    ]);
    // An alias as a value is still the YAML it always was.
    expect(() =>
      parsePolicy('version: 1\nname: &n x\nrules:\n  - {id: *n, action: warn}\n', 'p.yaml'),
    ).not.toThrow();
  });

  it('a policy reusing one small anchor hundreds of times loads', () => {
    // The yaml library's own guard refused the 100th use of `*prod` as "a resource exhaustion attack".
    let text =
      'version: 1\nname: x\nrules:\n  - {id: r0, action: reject, when: {repositories: &prod ["payments/*"]}}\n';
    for (let i = 1; i <= 300; i++) text += `  - {id: r${i}, action: warn, when: {repositories: *prod}}\n`;
    const { policy } = parsePolicy(text, 'p.yaml');
    expect(policy.rules).toHaveLength(301);
    for (const rule of policy.rules) expect(rule.when?.repositories).toEqual(['payments/*']);
    // An anchor set again names its new value from there on, nested aliases included, as YAML says.
    const again = parsePolicy(
      'version: 1\nname: x\nrules:\n  - {id: a, action: reject, when: &w {severity: &s [LOW]}}\n' +
        '  - {id: b, action: reject, when: *w}\n  - {id: c, action: reject, when: {severity: &s [HIGH]}}\n' +
        '  - {id: d, action: reject, when: {severity: *s}}\n  - {id: e, action: reject, when: *w}\n',
      'p.yaml',
    ).policy;
    expect(again.rules.map((r) => r.when?.severity)).toEqual([['LOW'], ['LOW'], ['HIGH'], ['HIGH'], ['LOW']]);
  });

  it('a mapping or a list as a key is refused where it is, at once however deep, an alias inside it too', () => {
    const refused = (text: string): string => {
      try {
        parsePolicy(text, 'keys.yaml');
      } catch (e) {
        if (e instanceof InputError) return e.message;
        throw e;
      }
      return 'loaded';
    };
    // A nest of mappings as keys, 1 KiB: it took seconds, then a RangeError, before.
    const started = performance.now();
    expect(refused(`version: 1\nname: x\na: ${'{'.repeat(300)}z: 1${'}: 1'.repeat(300)}\n`)).toBe(
      'keys.yaml:3:5: a: expected keys written as text (a mapping or a list is never a key); got a mapping as a key',
    );
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(refused('version: 1\nname: x\nk: &k [1, 2]\n? [*k]\n: 1\n')).toBe(
      'keys.yaml:4:3: expected keys written as text (a mapping or a list is never a key); got a list as a key',
    );
  });

  it('an alias bomb is refused at once, naming the limit and where it is passed', () => {
    let text = 'version: 1\nname: x\nl0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n';
    for (let i = 1; i <= 9; i++)
      text += `l${i}: &l${i} [${Array(10)
        .fill(`*l${i - 1}`)
        .join(', ')}]\n`;
    const started = performance.now();
    const refused = problems(text);
    expect(performance.now() - started).toBeLessThan(2000);
    expect(refused).toEqual([
      'policy.yaml:7:45: l4[7]: expected at most 100000 alias expansions (a limit against alias bombs: each *alias counts every value its &anchor marks, a list of 2 counting 3; write repeated values out, or use fewer or smaller anchors); got more: the alias *l3 here takes the count past 100000',
    ]);
  });

  it('counts what each alias copies, not only how often it is used', () => {
    // A list of 999 values is 1,000 values: 100 copies are the limit, 101 are past it. (The key `x` is no
    // policy's: a document within the limit is read, and refused by the schema instead.)
    const doc = (copies: number) =>
      `version: 1\nname: x\nbig: &big [${Array(999).fill('v').join(',')}]\nx: [${Array(copies).fill('*big').join(', ')}]\n`;
    expect(problems(doc(100))).toEqual([
      'policy.yaml:3:1: big: expected one of the keys version, name, mode, settings, rules, exceptions; got unknown key "big"',
      'policy.yaml:4:1: x: expected one of the keys version, name, mode, settings, rules, exceptions; got unknown key "x"',
    ]);
    expect(problems(doc(101))).toEqual([
      expect.stringMatching(
        /^policy\.yaml:4:605: x\[100\]: expected at most 100000 alias expansions .*; got more: the alias \*big here takes the count past 100000$/,
      ),
    ]);
  });

  it('an alias of no anchor before it, or inside the value its anchor marks, is refused where it is', () => {
    expect(problems('version: 1\nname: x\nrules: [{id: *nope, action: warn}]\n')).toEqual([
      'policy.yaml:3:14: rules[0].id: expected an alias of an anchor set before it (&nope); got the alias *nope',
    ]);
    expect(problems('version: 1\nname: x\nrules: &r [{id: a, action: warn, when: *r}]\n')).toEqual([
      'policy.yaml:3:40: rules[0].when: expected an alias outside the value its anchor marks (a value cannot hold itself); got the alias *r inside &r',
    ]);
  });

  it('a JSON policy error is located too', () => {
    expect(problems('{\n  "version": 1,\n  "name": "x",\n  "mode": "strict"\n}\n', 'p.json')).toEqual([
      'p.json:4:11: mode: expected one of enforce, advisory; got "strict"',
    ]);
  });
});
