// The Lambda entry point: the runtime is built once per cold start, the handler is the one the local run uses.
import { closingRuntime } from '../common/aws-closing.js';
import { approvalEndedHandler } from './handler.js';

export const handler = approvalEndedHandler(closingRuntime());
