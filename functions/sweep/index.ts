// The Lambda entry point: the runtime is built once per cold start, the handler is the one the local run uses.
import { awsRuntime } from '../common/aws.js';
import { discoveryFromEnv } from '../common/aws-discovery.js';
import { sweepHandler } from './handler.js';

export const handler = sweepHandler(awsRuntime(process.env, discoveryFromEnv(process.env)));
