import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { InputError } from '../../shared/errors.js';
import { describeError, type PolicySource } from '../../shared/gate/gate.js';
import { readPolicyBundle } from '../../shared/policy/bundle.js';
import type { LoadedPolicy } from '../../shared/policy/load.js';

/**
 * Reads the policy a deployed function runs with: the `policy.json` bundle written at synth time
 * (`shared/policy/bundle.ts`). Only the bundle reader is imported here, so the YAML parser stays out of the
 * Lambda bundles; `./policy.ts` also reads YAML, for local runs.
 *
 * A missing or bad bundle is not fatal: every decision then escalates (fail closed), naming the problem and
 * the hash of the bytes that failed.
 */
export function loadPolicyBundleSource(file: string): PolicySource {
  return loadWith(file, readPolicyBundle);
}

/** Reads `file` and loads it with `load`; an unreadable file or a refused policy becomes the problem. */
export function loadWith(file: string, load: (bytes: Buffer, file: string) => LoadedPolicy): PolicySource {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    return { ok: false, problem: `cannot read ${file}: ${describeError(e)}`, sha256: '', file };
  }
  try {
    return { ok: true, loaded: load(bytes, file) };
  } catch (e) {
    const problem = e instanceof InputError ? e.message : describeError(e);
    return { ok: false, problem, sha256: createHash('sha256').update(bytes).digest('hex'), file };
  }
}
