// The core's public surface: what the CLI, the Lambda functions and the benchmarks import.
export * from './decision/record.js';
export { buildSummary } from './decision/summary.js';
export { describeValue, formatPath, formatProblem, InputError, type InputProblem } from './errors.js';
export * from './findings/finding.js';
export {
  type FindingsSet,
  LOCATE_LIMIT_BYTES,
  mergeFindings,
  type NamedDocument,
  parseFindingsText,
} from './findings/parse.js';
export {
  documentImages,
  type FindingsDocument,
  type FindingsFormat,
  readFindingsDocument,
  ShapeError,
  validateDocument,
} from './findings/readers.js';
export * from './findings/table.js';
export { FindingTable } from './findings/table.js';
export { parseTimestamp } from './findings/timestamps.js';
export { compileGlob, compileGlobSet } from './glob.js';
export { type CompiledPolicy, compilePolicy, expiryOf } from './policy/compile.js';
export {
  type Evaluation,
  type EvaluationInput,
  evaluate,
  type GateCondition,
  type ViolationDetail,
} from './policy/evaluate.js';
export { type LoadedPolicy, MAX_POLICY_BYTES, parsePolicy } from './policy/load.js';
export * from './policy/schema.js';
export { StringTable } from './strings.js';
