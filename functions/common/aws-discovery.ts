import { CodePipelineClient } from '@aws-sdk/client-codepipeline';
import { CodePipelineDirectory } from '../../adapters/aws/codepipeline.js';
import { sdkClientConfig } from '../../adapters/aws/retry.js';
import {
  ApprovalDiscovery,
  DEFAULT_DISCOVERY,
  DISCOVERY_MAX_MINUTES,
  type Discovery,
} from '../../shared/gate/discovery.js';
import type { DiscoveryParts } from './aws-runtime.js';

/**
 * The sweep's discovery of approvals whose STARTED event never came, from the environment the stack sets:
 * `TOLLGATE_PIPELINES` and `TOLLGATE_APPROVAL_ACTIONS` (JSON arrays of globs, the event rules' own) and
 * `TOLLGATE_DISCOVERY_MINUTES` (how often, 0 to 60; 0 turns it off, for scheduled and manual sweeps alike).
 *
 * Settings it cannot read do not switch it off quietly: that would leave lost approvals to a person with
 * nothing said. Each due discovery then fails, naming the setting, after the gates were swept, so the
 * sweep's error alarm pages someone until the stack is fixed.
 */
export function discoveryFromEnv(env: NodeJS.ProcessEnv) {
  return (parts: DiscoveryParts): Discovery | undefined => {
    const problems: string[] = [];
    const pipelines = globList('TOLLGATE_PIPELINES', env.TOLLGATE_PIPELINES, problems);
    const actions = globList('TOLLGATE_APPROVAL_ACTIONS', env.TOLLGATE_APPROVAL_ACTIONS, problems);
    const every = env.TOLLGATE_DISCOVERY_MINUTES?.trim();
    const everyMinutes = every === undefined ? DEFAULT_DISCOVERY.everyMinutes : Number(every);
    if (every !== undefined && (!/^\d+$/.test(every) || everyMinutes > DISCOVERY_MAX_MINUTES)) {
      problems.push(
        `TOLLGATE_DISCOVERY_MINUTES: expected whole minutes from 0 (off) to ${DISCOVERY_MAX_MINUTES}; got ${JSON.stringify(env.TOLLGATE_DISCOVERY_MINUTES)}`,
      );
    }
    // Off means off: not even a manual invoke looks (the stack grants it nothing to look with then).
    if (problems.length === 0 && everyMinutes === 0) return undefined;
    if (problems.length > 0 || pipelines === undefined || actions === undefined) {
      const problem = `the sweep cannot look for lost approvals: ${problems.join('; ')}`;
      parts.logger.error(problem);
      return {
        due: (at) => Math.floor(at.getTime() / 60_000) % DEFAULT_DISCOVERY.everyMinutes === 0,
        discover: async () => {
          parts.deps.metrics.count('DiscoveryFailures');
          throw new Error(problem);
        },
      };
    }
    return new ApprovalDiscovery({
      ...parts.deps,
      approvals: parts.adapters.approvals,
      pipelines: new CodePipelineDirectory(new CodePipelineClient(sdkClientConfig(parts.region))),
      start: (e) => parts.gate.approvalStarted(e),
      config: { ...DEFAULT_DISCOVERY, pipelines, actions, everyMinutes },
    });
  };
}

/** A JSON array of non-empty glob strings, or a problem naming the variable, what it expects and what came. */
function globList(name: string, text: string | undefined, problems: string[]): string[] | undefined {
  if (text !== undefined) {
    try {
      const value: unknown = JSON.parse(text);
      if (Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === 'string' && v !== ''))
        return value as string[];
    } catch {
      // Not JSON: the problem below says what came.
    }
  }
  problems.push(
    `${name}: expected a JSON array of non-empty glob strings; got ${text === undefined ? 'nothing (unset)' : JSON.stringify(text)}`,
  );
  return undefined;
}
