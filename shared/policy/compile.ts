import { type FixAvailability, levelMask } from '../findings/finding.js';
import { fixBit } from '../findings/table.js';
import { compileGlob, compileGlobSet, type Glob, type GlobSet } from '../glob.js';
import type { LoadedPolicy } from './load.js';
import type { Policy, PolicyException, Rule } from './schema.js';

const DAY_MS = 86_400_000;

/** Rule conditions in the form the evaluator tests: sets and numbers, no parsing per finding. */
export interface CompiledRule {
  readonly rule: Rule;
  readonly index: number;
  /** Bit mask of the severities (see levelBit); 0 when the rule names none. */
  readonly severityMask: number;
  readonly minScore: number | undefined;
  /** Bit mask of fix availabilities (see fixBit); 0 when the rule names none. */
  readonly fixMask: number;
  /** 1 or 0 for exploitAvailable true or false; undefined when the rule does not say. */
  readonly exploit: number | undefined;
  readonly minEpss: number | undefined;
  readonly olderThanMs: number | undefined;
  readonly vulnerabilityIds: GlobSet | undefined;
  readonly packages: GlobSet | undefined;
  readonly repositories: GlobSet | undefined;
  readonly pipelines: GlobSet | undefined;
}

export interface CompiledRevoke {
  readonly exploit: number | undefined;
  readonly minEpss: number | undefined;
  readonly minScore: number | undefined;
  readonly fixMask: number;
  readonly severityMask: number;
}

export interface CompiledException {
  readonly exception: PolicyException;
  readonly index: number;
  readonly vulnerabilityId: Glob;
  readonly packages: GlobSet | undefined;
  readonly repositories: GlobSet | undefined;
  readonly pipelines: GlobSet | undefined;
  /** Epoch ms after which the exception no longer applies (a date means the end of that day, UTC). */
  readonly expiresAt: number;
  readonly revokeIf: CompiledRevoke | undefined;
}

export interface CompiledPolicy {
  readonly policy: Policy;
  readonly sha256: string;
  readonly rules: readonly CompiledRule[];
  readonly exceptions: readonly CompiledException[];
}

/**
 * Compiled policies by the loaded policy they were compiled from. A loaded policy is not changed once
 * parsed, and it is usually decided on many times (`evaluate` is handed the loaded policy): it is compiled
 * once, not per decision. This also keeps the compiled globs alive as long as the policy, so that
 * optimised code specialised on them is not discarded each time the garbage collector runs.
 */
const compiledPolicies = new WeakMap<LoadedPolicy, CompiledPolicy>();

export function compilePolicy(loaded: LoadedPolicy): CompiledPolicy {
  let compiled = compiledPolicies.get(loaded);
  // The same policy object only: a caller that builds a new one (or swaps `policy`) gets a fresh compile.
  if (compiled === undefined || compiled.policy !== loaded.policy || compiled.sha256 !== loaded.sha256) {
    compiled = compileLoaded(loaded);
    compiledPolicies.set(loaded, compiled);
  }
  return compiled;
}

function compileLoaded(loaded: LoadedPolicy): CompiledPolicy {
  const { policy } = loaded;
  const globSet = sharedGlobSets();
  return {
    policy,
    sha256: loaded.sha256,
    rules: policy.rules.map((rule, index) => compileRule(rule, index, globSet)),
    exceptions: policy.exceptions.map((exception, index) => compileException(exception, index, globSet)),
  };
}

type GlobSets = (patterns: readonly string[] | undefined) => GlobSet | undefined;

/**
 * One GlobSet per distinct list of patterns in a policy. The evaluator caches what a package set matched by
 * the set itself (PackageMatcher), so a package list that a rule and an exception both give
 * (`packages: [openssl*]`) is matched once per decision. A GlobSet holds no state, so sharing one between
 * fields changes nothing else.
 */
function sharedGlobSets(): GlobSets {
  const sets = new Map<string, GlobSet>();
  return (patterns) => {
    if (patterns === undefined) return undefined;
    const key = JSON.stringify(patterns);
    let set = sets.get(key);
    if (set === undefined) {
      set = compileGlobSet(patterns);
      sets.set(key, set);
    }
    return set;
  };
}

function compileRule(rule: Rule, index: number, globSet: GlobSets): CompiledRule {
  const w = rule.when;
  return {
    rule,
    index,
    severityMask: w.severity ? levelMask(w.severity) : 0,
    minScore: w.minScore,
    fixMask: fixMask(w.fixAvailable),
    exploit: w.exploitAvailable === undefined ? undefined : w.exploitAvailable ? 1 : 0,
    minEpss: w.minEpss,
    olderThanMs: w.olderThanDays === undefined ? undefined : w.olderThanDays * DAY_MS,
    vulnerabilityIds: globSet(w.vulnerabilityIds),
    packages: globSet(w.packages),
    repositories: globSet(w.repositories),
    pipelines: globSet(w.pipelines),
  };
}

function compileException(exception: PolicyException, index: number, globSet: GlobSets): CompiledException {
  const r = exception.revokeIf;
  return {
    exception,
    index,
    vulnerabilityId: compileGlob(exception.vulnerabilityId),
    packages: globSet(exception.packages),
    repositories: globSet(exception.repositories),
    pipelines: globSet(exception.pipelines),
    expiresAt: expiryOf(exception.expires),
    revokeIf: r
      ? {
          exploit: r.exploitAvailable === undefined ? undefined : r.exploitAvailable ? 1 : 0,
          minEpss: r.minEpss,
          minScore: r.minScore,
          fixMask: fixMask(r.fixAvailable),
          severityMask: r.severity ? levelMask(r.severity) : 0,
        }
      : undefined,
  };
}

/** `2027-01-31` lasts until the end of that day, UTC; a timestamp is taken as written. */
export function expiryOf(expires: string): number {
  if (expires.length === 10) return Date.parse(`${expires}T00:00:00Z`) + DAY_MS - 1;
  return Date.parse(expires);
}

function fixMask(fixes: readonly FixAvailability[] | undefined): number {
  let mask = 0;
  for (const f of fixes ?? []) mask |= fixBit(f);
  return mask;
}
