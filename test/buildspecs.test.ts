import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { TollgateDemoPipelineStack } from '../infra/demo-pipeline-stack.js';

/**
 * The buildspecs a platform engineer copies (the README's) or deploys (the demo's) are run here under bash
 * with `aws` and `docker` stubbed and only the variables CodeBuild gives a build: one that needs a variable
 * nobody sets, or exports an empty IMAGE_URI, fails here rather than in someone's first pipeline run.
 */
interface BuildSpec {
  readonly env?: { readonly shell?: string; readonly variables?: Record<string, string> };
  readonly phases: { readonly build: { readonly commands: readonly string[] } };
}

const DIGEST = `sha256:${'ab'.repeat(32)}`;
const REGISTRY = '123456789012.dkr.ecr.eu-west-1.amazonaws.com';

/** `aws` and `docker` as far as a build uses them; `docker inspect` knows only images pushed before it. */
function stubs(inspect: 'pushed' | 'nothing'): string {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-buildspec-'));
  const log = join(dir, 'calls.log');
  const write = (name: string, body: string) => {
    writeFileSync(join(dir, name), `#!/bin/bash\necho "${name} $*" >> "${log}"\n${body}\n`);
    chmodSync(join(dir, name), 0o755);
  };
  write('aws', 'echo secret-password');
  write(
    'docker',
    [
      'case "$1" in',
      '  login) cat > /dev/null ;;',
      '  build|push) ;;',
      `  inspect) ${inspect === 'pushed' ? `ref="\${@: -1}"; grep -q "^docker push $ref\\$" "${log}" && echo "\${ref%:*}@${DIGEST}"` : 'echo ""'} ;;`,
      '  *) exit 64 ;;',
      'esac',
    ].join('\n'),
  );
  return dir;
}

/** Runs a buildspec's build phase as CodeBuild does (one shell for the phase), then prints IMAGE_URI. */
function runBuild(spec: BuildSpec, env: Record<string, string>, inspect: 'pushed' | 'nothing' = 'pushed') {
  expect(spec.env?.shell).toBe('bash');
  const bin = stubs(inspect);
  const script = [...spec.phases.build.commands, 'echo "IMAGE_URI=$IMAGE_URI"'].join('\n');
  // No ~/.bashrc: bash reads it when its input is a socket (as Node's pipes are), and CodeBuild's has none.
  const result = spawnSync('bash', ['--norc', '--noprofile', '-c', script], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: `${bin}:/usr/bin:/bin`,
      AWS_REGION: 'eu-west-1',
      CODEBUILD_BUILD_NUMBER: '7',
      ...spec.env?.variables,
      ...env,
    },
  });
  return { ...result, calls: readFileSync(join(bin, 'calls.log'), 'utf8').trim().split('\n') };
}

describe('README: the buildspec that exports IMAGE_URI (Gate an existing pipeline)', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('### Gate an existing pipeline'));
  const block = /```yaml\n([\s\S]*?)```/.exec(section)?.[1];
  const spec = parse(block ?? '') as BuildSpec;

  it('runs with nothing but what it sets itself and CodeBuild gives, and exports the image by digest', () => {
    const run = runBuild(spec, {});
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(run.stdout).toContain(`IMAGE_URI=${REGISTRY}/payments/api@${DIGEST}`);
    expect(run.calls).toContain(`docker push ${REGISTRY}/payments/api:build-7`);
    expect(run.calls).toContain(`docker login --username AWS --password-stdin ${REGISTRY}`);
  });

  it('fails the build when docker inspect gives no digest, rather than export an empty IMAGE_URI', () => {
    const run = runBuild(spec, {}, 'nothing');
    expect(run.status).not.toBe(0);
    expect(run.stdout).not.toContain('IMAGE_URI=');
  });
});

describe("the demo pipeline's build", () => {
  let spec: BuildSpec;
  let repositoryUri: string;

  beforeAll(() => {
    const stack = new TollgateDemoPipelineStack(new App(), 'Demo');
    const projects = Template.fromStack(stack).findResources('AWS::CodeBuild::Project');
    const build = Object.values(projects).find((p) =>
      String((p as { Properties: { Description: string } }).Properties.Description).includes(
        'exports IMAGE_URI',
      ),
    ) as { Properties: { Source: { BuildSpec: string } } };
    spec = JSON.parse(build.Properties.Source.BuildSpec) as BuildSpec;
    repositoryUri = `${REGISTRY}/tollgate-demo/app`;
  }, 60_000);

  it('tags each build apart, so a retried Build stage in one execution pushes a tag of its own', () => {
    const env = {
      REPOSITORY_URI: repositoryUri,
      PIPELINE_EXECUTION_ID: '7c0e5a1d-3b9f-4f43-9a52-0d2f6b1e8c47',
    };
    const first = runBuild(spec, env);
    expect(first.stderr).toBe('');
    expect(first.status).toBe(0);
    expect(first.stdout).toContain(`IMAGE_URI=${repositoryUri}@${DIGEST}`);
    const retry = runBuild(spec, { ...env, CODEBUILD_BUILD_NUMBER: '8' });
    const pushed = (r: typeof first) => r.calls.find((c) => c.startsWith('docker push '));
    expect(pushed(first)).toBe(`docker push ${repositoryUri}:${env.PIPELINE_EXECUTION_ID}-7`);
    expect(pushed(retry)).not.toBe(pushed(first));
  });
});
