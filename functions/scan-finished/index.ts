// The Lambda entry point: the runtime is built once per cold start, the handler is the one the local run uses.
import { awsRuntime } from '../common/aws.js';
import { scanFinishedHandler } from './handler.js';

export const handler = scanFinishedHandler(awsRuntime());
