/*
 * In the Lambda bundles only (an esbuild `alias`, infra/bundling.ts), this module stands in for
 * `@smithy/credential-provider-imds`, which the SDK's default chain loads last, for EC2's instance metadata
 * service and ECS's older container endpoint. Lambda has no instance metadata service, and it gives a
 * function its role's credentials in the environment, the first link of the chain.
 *
 * A container credentials endpoint (AWS_CONTAINER_CREDENTIALS_FULL_URI or _RELATIVE_URI set) still works:
 * the chain asks `@aws-sdk/credential-provider-http` first, which is kept and reads both variables, and
 * comes here only after it.
 */
import { notBundled } from './credential-files.js';

// The variables `@aws-sdk/credential-provider-node` reads through this module, under the same values.
export const ENV_CMDS_FULL_URI = 'AWS_CONTAINER_CREDENTIALS_FULL_URI';
export const ENV_CMDS_RELATIVE_URI = 'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI';

export const fromContainerMetadata = notBundled('fromContainerMetadata');
export const fromInstanceMetadata = notBundled('fromInstanceMetadata');
