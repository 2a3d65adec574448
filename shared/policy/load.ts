import { parseYamlInput } from '../yaml-input.js';
import { type Policy, PolicySchema } from './schema.js';

export interface LoadedPolicy {
  readonly policy: Policy;
  /** Hex SHA-256 of the file's bytes: the decision names exactly the policy text it was made under. */
  readonly sha256: string;
  readonly file: string;
}

/** Policies are small; a bigger file is a mistake (or an attack on the parser), not a policy. */
export const MAX_POLICY_BYTES = 1024 * 1024;

/**
 * Parses a policy file (YAML 1.2; JSON is YAML) and validates it against the policy language v1. Every
 * problem is reported with the file, line, column and key path; unknown keys are errors, so a typo cannot
 * silently weaken a policy.
 */
export function parsePolicy(bytes: Uint8Array | string, file: string): LoadedPolicy {
  const { value, sha256 } = parseYamlInput(bytes, file, PolicySchema, {
    what: 'a policy (a mapping with version, name, rules, …)',
    maxBytes: MAX_POLICY_BYTES,
  });
  return { policy: value, sha256, file };
}
