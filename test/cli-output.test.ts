import { constants } from 'node:buffer';
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MAX_FINDINGS_BYTES } from '../cli/evaluate.js';
import { InputError } from '../shared/errors.js';
import { decodeUtf8 } from '../shared/yaml-input.js';
import { inputErrorOf, ROOT, tollgateCli } from './helpers.js';

/*
 * Where the CLI's output goes: the report alone on stdout, logs and errors on stderr, and a report that
 * could not be written said so, with exit 1.
 */

const tmp = mkdtempSync(join(tmpdir(), 'tollgate-output-'));
const REJECTED = 'examples/scenarios/02-critical-rejected.json';
const BASELINE = 'examples/policies/baseline.yaml';
const BILLING = 'examples/findings/billing-api.list-findings.json';

describe('tollgate simulate --log-level', () => {
  it('--format json --log-level DEBUG: stdout is one JSON document, the logs are JSON lines on stderr', () => {
    const r = tollgateCli([
      'simulate',
      REJECTED,
      '--store',
      join(tmp, 'db-logs'),
      '--format',
      'json',
      '--log-level',
      'DEBUG',
    ]);
    expect(r.status).toBe(0);
    const report = JSON.parse(r.stdout) as { expectations: { met: boolean } };
    expect(report.expectations.met).toBe(true);
    const logs = r.stderr.split('\n').filter((line) => line !== '');
    expect(logs.length).toBeGreaterThan(0);
    for (const line of logs) {
      expect(JSON.parse(line)).toMatchObject({ service: 'tollgate', level: expect.any(String) });
    }
    expect(logs.map((l) => (JSON.parse(l) as { level: string }).level)).toContain('INFO');
  });

  it("a log reader that stops early does not end the replay: the report is whole, the exit status the outcome's", () => {
    const report = join(tmp, 'report-epipe.json');
    const status = join(tmp, 'status-epipe');
    const cli = [process.execPath, join(ROOT, 'bin/tollgate.js'), 'simulate', REJECTED]
      .concat(['--store', join(tmp, 'db-epipe'), '--format', 'json', '--log-level', 'DEBUG'])
      .map((a) => `'${a}'`)
      .join(' ');
    // The logs (stderr) go to a reader that takes 100 bytes and leaves; the report goes to a file.
    const r = spawnSync(
      'bash',
      ['-c', `${cli} 2>&1 >'${report}' | head -c 100 >/dev/null; echo "\${PIPESTATUS[0]}" >'${status}'`],
      {
        cwd: ROOT,
        encoding: 'utf8',
        env: { ...process.env, NO_COLOR: '1' },
      },
    );
    expect(r.status).toBe(0);
    expect(readFileSync(status, 'utf8').trim()).toBe('0');
    const parsed = JSON.parse(readFileSync(report, 'utf8')) as { expectations: { met: boolean } };
    expect(parsed.expectations.met).toBe(true);
  });

  it('SILENT (the default) writes nothing on stderr', () => {
    const r = tollgateCli(['simulate', REJECTED, '--store', join(tmp, 'db-silent'), '--format', 'json']);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
    JSON.parse(r.stdout);
  });
});

describe('a report that cannot be written', () => {
  // /dev/full refuses every write with ENOSPC: a full disk, without filling one.
  const full = existsSync('/dev/full');

  function toDevFull(args: readonly string[]): { status: number | null; stderr: string } {
    const fd = openSync('/dev/full', 'w');
    try {
      const r = spawnSync(process.execPath, [join(ROOT, 'bin/tollgate.js'), ...args], {
        cwd: ROOT,
        encoding: 'utf8',
        stdio: ['ignore', fd, 'pipe'],
        env: { ...process.env, NO_COLOR: '1' },
      });
      return { status: r.status, stderr: r.stderr };
    } finally {
      closeSync(fd);
    }
  }

  it.skipIf(!full)('evaluate > /dev/full: one line on stderr, no stack trace, exit 1', () => {
    const r = toDevFull(['evaluate', '-p', BASELINE, '-f', BILLING]);
    expect(r.stderr).toBe('tollgate: cannot write the report: ENOSPC\n');
    expect(r.status).toBe(1);
  });

  it.skipIf(!full)('simulate --format json > /dev/full: the same', () => {
    const r = toDevFull(['simulate', REJECTED, '--store', join(tmp, 'db-full'), '--format', 'json']);
    expect(r.stderr).toBe('tollgate: cannot write the report: ENOSPC\n');
    expect(r.status).toBe(1);
  });
});

describe('findings files near the size limit', () => {
  afterEach(() => {
    vi.unstubAllGlobals();
  });

  it('the limit lets through no file too long to be decoded into one string', () => {
    // UTF-8 decodes to at most as many characters as it has bytes.
    expect(MAX_FINDINGS_BYTES).toBeLessThanOrEqual(constants.MAX_STRING_LENGTH);
  });

  it('a decode failure other than "not UTF-8" is an input error naming the file and its size', () => {
    // What V8 throws past its longest string, without a 512 MB file: every decode fails so.
    class TooLong {
      decode(): string {
        throw Object.assign(new Error('Cannot create a string longer than 0x1fffffe8 characters'), {
          code: 'ERR_STRING_TOO_LONG',
        });
      }
    }
    vi.stubGlobal('TextDecoder', TooLong);
    const e = inputErrorOf(() => decodeUtf8(new TextEncoder().encode('{"findings": []}\n'), 'big.json'));
    expect(e).toBeInstanceOf(InputError);
    expect(e.message).toBe(
      'big.json: expected a file small enough to be read as one string; got 17 bytes, which could not be decoded (Cannot create a string longer than 0x1fffffe8 characters)',
    );
  });

  it('bytes that are not UTF-8 are still refused at their line and column', () => {
    const e = inputErrorOf(() => decodeUtf8(Uint8Array.from([0x61, 0x0a, 0x62, 0xff]), 'bad.json'));
    expect(e.message).toBe('bad.json:2:2: expected UTF-8 text; got bytes that are not UTF-8 (0xff)');
  });
});
