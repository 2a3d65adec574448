import { describeValue, formatPath, InputError, type InputProblem } from '../errors.js';
import { expectedOf } from '../zod-issues.js';
import type { LoadedPolicy } from './load.js';
import { type Policy, PolicySchema } from './schema.js';

/*
 * The policy as the functions receive it. The YAML a person wrote is parsed and validated once, at synth
 * time, with the loader and messages of `tollgate evaluate`; the functions get the result as JSON and only
 * validate it again with the zod schema, so the YAML parser is not in their bundles (nor on their cold
 * start). The bundle keeps the original file's name and the SHA-256 of its bytes: a decision names the text
 * people wrote and reviewed, not this derived JSON.
 */

export const POLICY_BUNDLE_FORMAT = 'tollgate-policy-bundle/1';

export interface PolicyBundle {
  readonly format: typeof POLICY_BUNDLE_FORMAT;
  /** The policy file as written (a path relative to the project, or a name). */
  readonly file: string;
  /** Hex SHA-256 of the original file's bytes. */
  readonly sha256: string;
  /** The validated policy, defaults filled in. */
  readonly policy: Policy;
}

/** The bundle of a policy loaded (and so validated) by `parsePolicy`. */
export function policyBundle(loaded: LoadedPolicy): PolicyBundle {
  return { format: POLICY_BUNDLE_FORMAT, file: loaded.file, sha256: loaded.sha256, policy: loaded.policy };
}

/** Whether a parsed JSON value claims to be a policy bundle (a policy itself has no `format` key). */
export function isPolicyBundleLike(value: unknown): boolean {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && 'format' in value;
}

const SHA256 = /^[0-9a-f]{64}$/;

/**
 * Reads a policy bundle (`policy.json`) back into the policy it was made from. Everything is checked again
 * (the file could be stale, truncated or edited): a problem throws an InputError naming `file` (the bundle)
 * and the key path, as `FILE: PATH: expected X; got Y`.
 */
export function readPolicyBundle(text: string | Uint8Array, file: string): LoadedPolicy {
  const problem = (path: readonly PropertyKey[], expected: string, got: string): InputError =>
    new InputError([{ file, path: formatPath(path), expected, got }]);
  const source = typeof text === 'string' ? text : new TextDecoder('utf-8').decode(text);
  let value: unknown;
  try {
    value = JSON.parse(source);
  } catch (e) {
    throw problem([], 'a Tollgate policy bundle (JSON written at synth time)', `invalid JSON (${String(e)})`);
  }
  if (!isPolicyBundleLike(value)) {
    throw problem(
      [],
      `a Tollgate policy bundle (a mapping with format, file, sha256, policy)`,
      describeValue(value),
    );
  }
  const bundle = value as Record<string, unknown>;
  if (bundle.format !== POLICY_BUNDLE_FORMAT) {
    throw problem(['format'], `"${POLICY_BUNDLE_FORMAT}"`, describeValue(bundle.format));
  }
  if (typeof bundle.file !== 'string' || bundle.file === '') {
    throw problem(['file'], 'the name of the policy file it was made from', describeValue(bundle.file));
  }
  if (typeof bundle.sha256 !== 'string' || !SHA256.test(bundle.sha256)) {
    throw problem(['sha256'], 'the hex SHA-256 of the policy file', describeValue(bundle.sha256));
  }
  const parsed = PolicySchema.safeParse(bundle.policy);
  if (!parsed.success) {
    const problems: InputProblem[] = parsed.error.issues.slice(0, 10).flatMap((issue) => {
      const path = ['policy', ...issue.path];
      if (issue.code === 'unrecognized_keys') {
        return issue.keys.map((key) => ({
          file,
          path: formatPath([...path, key]),
          expected: 'a known key',
          got: `unknown key "${key}"`,
        }));
      }
      const found = valueAt(bundle, path);
      return [
        {
          file,
          path: formatPath(path),
          expected: expectedOf(issue),
          got: found === undefined ? 'nothing (the key is missing)' : describeValue(found),
        },
      ];
    });
    throw new InputError(problems);
  }
  return { policy: parsed.data, sha256: bundle.sha256, file: bundle.file };
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = root;
  for (const key of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[key];
  }
  return v;
}
