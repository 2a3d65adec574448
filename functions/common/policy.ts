import type { PolicySource } from '../../shared/gate/gate.js';
import { isPolicyBundleLike, readPolicyBundle } from '../../shared/policy/bundle.js';
import { parsePolicy } from '../../shared/policy/load.js';
import { loadWith } from './policy-bundle.js';

/**
 * Reads a policy for a local run (the simulator, tests): a policy bundle (`policy.json`, as deployed) or a
 * policy file as people write it (YAML, or JSON). This imports the YAML parser: the Lambda entry points use
 * `loadPolicyBundleSource` (./policy-bundle.ts) instead, so it stays out of their bundles.
 *
 * A policy that fails to load is not fatal: every decision then escalates (fail closed), naming the problem
 * and the hash of the text that failed.
 */
export function loadPolicySource(file: string): PolicySource {
  return loadWith(file, (bytes, name) =>
    isBundleText(bytes) ? readPolicyBundle(bytes, name) : parsePolicy(bytes, name),
  );
}

/** A JSON mapping with a `format` key is a bundle (a policy has no such key); anything else is a policy. */
function isBundleText(bytes: Buffer): boolean {
  const text = bytes.toString('utf8').trimStart();
  if (!text.startsWith('{')) return false;
  try {
    return isPolicyBundleLike(JSON.parse(text));
  } catch {
    return false;
  }
}
