import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { InputError } from '../../shared/errors.js';
import { describeError, type PolicySource } from '../../shared/gate/gate.js';
import { parsePolicy } from '../../shared/policy/load.js';

/**
 * Reads the policy the functions run with. A policy that fails to load is not fatal: every decision then
 * escalates (fail closed), naming the problem and the hash of the text that failed.
 */
export function loadPolicySource(file: string): PolicySource {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    return { ok: false, problem: `cannot read ${file}: ${describeError(e)}`, sha256: '', file };
  }
  try {
    return { ok: true, loaded: parsePolicy(bytes, file) };
  } catch (e) {
    const problem = e instanceof InputError ? e.message : describeError(e);
    return { ok: false, problem, sha256: createHash('sha256').update(bytes).digest('hex'), file };
  }
}
