import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makePolicy } from '../bench/generate.js';
import { loadPolicySource } from '../functions/common/policy.js';
import { loadPolicyBundleSource } from '../functions/common/policy-bundle.js';
import { InputError } from '../shared/errors.js';
import { POLICY_BUNDLE_FORMAT, policyBundle, readPolicyBundle } from '../shared/policy/bundle.js';
import { parsePolicy } from '../shared/policy/load.js';

/*
 * The policy reaches the functions as a bundle (`policy.json`): the YAML parsed and validated at synth time,
 * the functions validating the JSON again with the zod schema only. What they run with must be exactly the
 * policy `tollgate evaluate` reads from the YAML, under the YAML file's name and hash.
 */

const POLICIES = new URL('../examples/policies/', import.meta.url);
const examples = readdirSync(POLICIES)
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => ({ file: `examples/policies/${f}`, bytes: readFileSync(new URL(f, POLICIES)) }));

const dir = mkdtempSync(join(tmpdir(), 'tollgate-policy-bundle-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const bundleText = (file: string, bytes: Uint8Array | string) =>
  JSON.stringify(policyBundle(parsePolicy(bytes, file)));

function refusal(text: string): string[] {
  try {
    readPolicyBundle(text, '/var/task/policy.json');
  } catch (e) {
    if (e instanceof InputError) return e.message.split('\n');
    throw e;
  }
  throw new Error('expected the bundle to be refused');
}

describe('policy bundles', () => {
  it('give back the policy as parsePolicy read it, under the YAML file’s name and sha256', () => {
    expect(examples.length).toBeGreaterThanOrEqual(3);
    for (const { file, bytes } of [
      ...examples,
      { file: 'bench-policy.json', bytes: Buffer.from(makePolicy()) },
    ]) {
      const loaded = parsePolicy(bytes, file);
      const text = JSON.stringify(policyBundle(loaded));
      const read = readPolicyBundle(text, '/var/task/policy.json');
      expect(read).toEqual(loaded);
      expect(read.file).toBe(file);
      expect(read.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
      expect(JSON.parse(text)).toMatchObject({ format: POLICY_BUNDLE_FORMAT, file, sha256: read.sha256 });
    }
  });

  it('refuse what is not a bundle, or a bundle of another format, naming the bundle file', () => {
    expect(refusal('version: 1')).toEqual([
      expect.stringMatching(
        /^\/var\/task\/policy\.json: expected a Tollgate policy bundle \(JSON written at synth time\); got invalid JSON/,
      ),
    ]);
    expect(refusal('[1, 2]')).toEqual([
      '/var/task/policy.json: expected a Tollgate policy bundle (a mapping with format, file, sha256, policy); got a list of 2',
    ]);
    expect(refusal('{"format": "tollgate-policy-bundle/2"}')).toEqual([
      '/var/task/policy.json: format: expected "tollgate-policy-bundle/1"; got "tollgate-policy-bundle/2"',
    ]);
    const good = JSON.parse(bundleText('p.yaml', 'version: 1\nname: p\n')) as Record<string, unknown>;
    expect(refusal(JSON.stringify({ ...good, file: '' }))).toEqual([
      '/var/task/policy.json: file: expected the name of the policy file it was made from; got ""',
    ]);
    expect(refusal(JSON.stringify({ ...good, sha256: 'abc' }))).toEqual([
      '/var/task/policy.json: sha256: expected the hex SHA-256 of the policy file; got "abc"',
    ]);
  });

  it('validate the policy again, with the messages of the policy language', () => {
    const good = JSON.parse(
      bundleText('p.yaml', 'version: 1\nname: p\nrules:\n  - { id: a, action: reject }\n'),
    ) as { policy: { rules: Record<string, unknown>[] } } & Record<string, unknown>;
    const edited = {
      ...good,
      policy: {
        ...good.policy,
        rules: [{ ...good.policy.rules[0], action: 'block', when: { sevrity: [] } }],
      },
    };
    expect(refusal(JSON.stringify(edited))).toEqual([
      '/var/task/policy.json: policy.rules[0].action: expected one of reject, escalate, warn; got "block"',
      '/var/task/policy.json: policy.rules[0].when.sevrity: expected a known key; got unknown key "sevrity"',
    ]);
    expect(refusal(JSON.stringify({ ...good, policy: undefined }))).toEqual([
      '/var/task/policy.json: policy: expected a mapping; got nothing (the key is missing)',
    ]);
  });
});

describe('the functions’ policy loaders', () => {
  const yamlFile = join(dir, 'baseline.yaml');
  const bundleFile = join(dir, 'policy.json');
  const baseline = examples.find((e) => e.file.endsWith('baseline.yaml'))!;
  writeFileSync(yamlFile, baseline.bytes);
  writeFileSync(bundleFile, bundleText(baseline.file, baseline.bytes));

  it('Lambda (loadPolicyBundleSource) reads the bundle: the policy of the YAML, its name and hash', () => {
    const source = loadPolicyBundleSource(bundleFile);
    expect(source).toEqual({ ok: true, loaded: parsePolicy(baseline.bytes, baseline.file) });
  });

  it('Lambda never reads YAML: a YAML policy there fails closed, naming the problem', () => {
    const source = loadPolicyBundleSource(yamlFile);
    expect(source).toMatchObject({
      ok: false,
      file: yamlFile,
      sha256: createHash('sha256').update(baseline.bytes).digest('hex'),
    });
    expect(!source.ok && source.problem).toMatch(/expected a Tollgate policy bundle/);
  });

  it('a missing bundle fails closed too', () => {
    const missing = join(dir, 'nowhere', 'policy.json');
    const source = loadPolicyBundleSource(missing);
    expect(source).toMatchObject({ ok: false, file: missing, sha256: '' });
    expect(!source.ok && source.problem).toMatch(/^cannot read .*policy\.json: ENOENT/);
  });

  it('local runs (loadPolicySource) read either, to the same policy', () => {
    const fromYaml = loadPolicySource(yamlFile);
    const fromBundle = loadPolicySource(bundleFile);
    expect(fromYaml.ok && fromYaml.loaded.policy).toEqual(fromBundle.ok && fromBundle.loaded.policy);
    expect(fromBundle).toEqual({ ok: true, loaded: parsePolicy(baseline.bytes, baseline.file) });
    // A policy written in JSON is still a policy, not a bundle.
    const jsonPolicy = join(dir, 'policy-as-json.json');
    writeFileSync(jsonPolicy, JSON.stringify({ version: 1, name: 'as-json' }));
    expect(loadPolicySource(jsonPolicy)).toMatchObject({ ok: true, loaded: { policy: { name: 'as-json' } } });
  });
});
