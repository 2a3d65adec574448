import { CodePipelineClient } from '@aws-sdk/client-codepipeline';
import { CodePipelineDirectory } from '../../adapters/aws/codepipeline.js';
import { sdkClientConfig } from '../../adapters/aws/retry.js';
import { ApprovalDiscovery, DEFAULT_DISCOVERY } from '../../shared/gate/discovery.js';
import type { DiscoveryParts } from './aws-runtime.js';

/**
 * The sweep's discovery of approvals whose STARTED event never came, from the environment the stack sets:
 * `TOLLGATE_PIPELINES` and `TOLLGATE_APPROVAL_ACTIONS` (JSON arrays of globs, the event rules' own) and
 * `TOLLGATE_DISCOVERY_MINUTES` (how often; 0 turns it off, for scheduled and manual sweeps alike). Without the globs it cannot know what is gated:
 * it logs that at cold start and stays off, rather than guess.
 */
export function discoveryFromEnv(env: NodeJS.ProcessEnv) {
  return (parts: DiscoveryParts): ApprovalDiscovery | undefined => {
    const pipelines = globList(env.TOLLGATE_PIPELINES);
    const actions = globList(env.TOLLGATE_APPROVAL_ACTIONS);
    const every = env.TOLLGATE_DISCOVERY_MINUTES;
    const everyMinutes = every === undefined || every === '' ? DEFAULT_DISCOVERY.everyMinutes : Number(every);
    // Off means off: not even a manual invoke looks (the stack grants it nothing to look with then).
    if (everyMinutes === 0) return undefined;
    if (
      pipelines === undefined ||
      actions === undefined ||
      !Number.isInteger(everyMinutes) ||
      everyMinutes < 0
    ) {
      parts.logger.error('discovery is off: its settings are missing or malformed', {
        TOLLGATE_PIPELINES: env.TOLLGATE_PIPELINES,
        TOLLGATE_APPROVAL_ACTIONS: env.TOLLGATE_APPROVAL_ACTIONS,
        TOLLGATE_DISCOVERY_MINUTES: every,
        expected: 'JSON arrays of non-empty strings, and a whole number of minutes (0: off)',
      });
      return undefined;
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

function globList(text: string | undefined): string[] | undefined {
  if (text === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    if (Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === 'string' && v !== ''))
      return value as string[];
  } catch {
    // Malformed: reported by the caller with the text.
  }
  return undefined;
}
