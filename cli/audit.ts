/**
 * `tollgate audit`: the auditors' commands over the audit trail (list, show, verify, export), and `archive`,
 * which writes to the archive bucket the records its function gave up on.
 *
 * They read either the local store that `tollgate demo` / `npm start` fills (`.tollgate/db`, dynalite) or,
 * with `--table`, a deployed table through the AWS SDK's default credential chain (`--profile`,
 * `--region`, `AWS_PROFILE`, `AWS_REGION`, …, as the AWS CLI takes them). Every read goes through
 * `DynamoAuditStore`, whose queries are served by keys and indexes (adapters/dynamodb/audit-store.ts).
 *
 * Errors: `tollgate: <message>` on stderr, exit 1, nothing on stdout (`list`, `show` and `verify` write
 * only once everything is read; `export` streams, so an error in the middle of it ends a partial file, and
 * the exit status says so). `verify` exits 2 when a chain does not verify, and `show` when the record it
 * prints does not hash to its hash or does not link to the record before. `archive` prints as it writes.
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import { recordDamage } from '../adapters/dynamodb/audit-damage.js';
import type { ArchiveComparison, SeqRange } from '../shared/audit/archive-compare.js';
import { hashOf } from '../shared/audit/chain.js';
import {
  type AuditFilter,
  type AuditRecord,
  type AuditRecordType,
  type AuditResolution,
  GENESIS,
  VULNERABILITY_LIMIT,
} from '../shared/audit/record.js';
import type { Outcome } from '../shared/decision/record.js';
import { repositoryOf } from '../shared/gate/image.js';
import { PIPELINE_NAME, PIPELINE_NAME_EXPECTED } from '../shared/gate/model.js';
import {
  ArchiveReadError,
  ArchiveWriteError,
  AuditUsageError,
  csvHeader,
  csvRow,
  parseS3Uri,
  parseTime,
  printable,
  renderShow,
  renderTable,
} from './audit-format.js';
import type { Source, SourceOptions } from './audit-source.js';
import { AUDIT_EXIT } from './exit.js';

/** The store's page size when none is asked for (DynamoDB pages stop at 1 MB anyway). */
const DEFAULT_PAGE_SIZE = 500;

// ── where the records are ─────────────────────────────────────────────────────────────────────────

/** An SDK or store error as one line an auditor can act on. */
function explain(e: unknown, source: string | undefined): string {
  if (!(e instanceof Error)) return String(e);
  // The archive's own errors name the object (and line) already; the table's name would mislead.
  if (
    e instanceof AuditUsageError ||
    e instanceof ArchiveReadError ||
    e instanceof ArchiveWriteError ||
    e.name === 'ArchiveLineError'
  )
    return e.message;
  const where = source ? ` (${source})` : '';
  switch (e.name) {
    case 'ResourceNotFoundException':
      return `${source ?? 'the table'} was not found: check --table and --region (${e.message})`;
    case 'CredentialsProviderError': {
      // --profile is set as AWS_PROFILE: name it, since a misspelt or missing profile is the usual cause.
      const profile = process.env.AWS_PROFILE;
      if (profile)
        return `no AWS credentials from profile "${profile}"${where}: check that it exists (aws configure list-profiles) or sign in (aws sso login --profile ${profile}): ${e.message}`;
      return `no AWS credentials${where}: pass --profile, set AWS_PROFILE, or sign in (aws sso login, aws configure): ${e.message}`;
    }
    case 'AccessDeniedException':
    case 'UnrecognizedClientException':
    case 'ExpiredTokenException':
      return `${e.name}${where}: ${e.message}`;
    default:
      break;
  }
  if (/region is missing/i.test(e.message)) {
    return `no AWS region: pass --region, set AWS_REGION, or give the profile a region (${e.message})`;
  }
  return `${e.message}${where}${process.env.TOLLGATE_DEBUG && e.stack ? `\n${e.stack}` : ''}`;
}

/**
 * Reads the command line (`prepare`, before anything is opened), opens the source, runs the command, closes
 * the source; maps every error to `tollgate: …` on stderr, exit 1.
 */
async function withSource<T>(
  options: SourceOptions,
  prepare: () => T,
  run: (source: Source, prepared: T) => Promise<number>,
): Promise<void> {
  let source: Source | undefined;
  process.stdout.on('error', onStdoutError);
  try {
    const prepared = prepare();
    // Loaded only now: the SDK and the local store are most of the CLI's start-up time, and `--help` or a
    // usage error needs neither.
    const { openSource } = await import('./audit-source.js');
    source = await openSource(options);
    const status = await run(source, prepared);
    process.exitCode = writeFailed ? AUDIT_EXIT.ERROR : status;
  } catch (e) {
    process.stderr.write(`tollgate: ${explain(e, source?.name).split('\n').join('\ntollgate: ')}\n`);
    process.exitCode = AUDIT_EXIT.ERROR;
  } finally {
    await source?.close().catch(() => {});
    process.stdout.off('error', onStdoutError);
  }
}

// ── output ────────────────────────────────────────────────────────────────────────────────────────

let pipeClosed = false;
/** A write to stdout failed otherwise (a full disk): the output is cut short, and the exit status says so. */
let writeFailed = false;

/** Writes, waiting when the pipe is full: a large export never piles up in memory behind a slow reader. */
async function write(text: string): Promise<void> {
  if (pipeClosed || text === '') return;
  if (process.stdout.write(text)) return;
  await new Promise<void>((resolve) => {
    const done = () => {
      process.stdout.off('drain', done);
      process.stdout.off('close', done);
      resolve();
    };
    process.stdout.once('drain', done);
    process.stdout.once('close', done);
  });
}

// `tollgate audit export | head`: the reader went away; stop quietly, as other Unix tools do. Listened to
// only while an audit command runs (withSource), so the other commands keep Node's behaviour. Any other
// failure (`> /dev/full`) stops the writing too, said in one line and exit 1: thrown from here it was an
// uncaught exception, a stack trace, or blamed on the local store by its crash handler.
function onStdoutError(e: NodeJS.ErrnoException): void {
  pipeClosed = true;
  if (e.code === 'EPIPE' || writeFailed) return;
  writeFailed = true;
  process.stderr.write(`tollgate: cannot write the report: ${e.code ?? e.message}\n`);
  process.exitCode = AUDIT_EXIT.ERROR;
}

// ── options ───────────────────────────────────────────────────────────────────────────────────────

const OUTCOMES: readonly Outcome[] = ['APPROVE', 'REJECT', 'ESCALATE'];
const TYPES: readonly AuditRecordType[] = ['decision', 'action', 'resolution'];
const RESOLUTION_STATES = [
  'SUCCEEDED',
  'FAILED',
  'ABANDONED',
  'CANCELED',
] as const satisfies readonly NonNullable<AuditResolution['state']>[];

function positiveInteger(flag: string) {
  return (value: string): number => {
    if (!/^\d+$/.test(value) || Number(value) < 1) {
      throw new InvalidArgumentError(`${flag} takes a whole number of 1 or more`);
    }
    return Number(value);
  };
}

/**
 * CVE-2024-45490, GHSA-…, ALAS-…, Inspector's own ids: anything without spaces. The store compares ids
 * exactly, so `cve-2024-45490` would match nothing and read as "never seen": the ids of the schemes whose
 * case is fixed are put in it (CVE upper case; GHSA as GitHub writes it, the prefix upper, the rest lower).
 * Other schemes' ids are compared as given.
 */
function vulnerabilityId(value: string): string {
  if (!/^\S+$/.test(value))
    throw new InvalidArgumentError('expected a vulnerability id, e.g. CVE-2024-45490');
  if (/^cve-/i.test(value)) return value.toUpperCase();
  if (/^ghsa(-[0-9a-z]{4}){3}$/i.test(value)) return `GHSA-${value.slice(5).toLowerCase()}`;
  return value;
}

const DIGEST = /^sha256:[0-9a-f]{64}$/;

/**
 * The store compares digests exactly: the 12 digits the IMAGE column of `list` shows would match nothing
 * and read as "this image never went through the gate". Refused instead, saying where the whole one is.
 */
function checkDigest(value: string): string {
  if (DIGEST.test(value)) return value;
  const hex = /^sha256:([0-9a-fA-F]*)$/.exec(value)?.[1];
  const got =
    hex === undefined
      ? JSON.stringify(value)
      : `${JSON.stringify(value)} (${hex.length} hex digit(s)${/[A-F]/.test(hex) ? ', upper case' : ''})`;
  throw new AuditUsageError(
    `--digest: expected a whole image digest, sha256: and 64 lowercase hex digits (the IMAGE column of "tollgate audit list" shows only the first 12: "list --format json" or "show" gives the whole); got ${got}`,
  );
}

/**
 * The store compares pipeline names exactly: a name no pipeline can have (`payments-api ` from a paste) would
 * match nothing and read as "this pipeline has no records". Refused instead.
 */
function checkPipeline(value: string): string {
  if (PIPELINE_NAME.test(value)) return value;
  throw new AuditUsageError(`--pipeline: expected ${PIPELINE_NAME_EXPECTED}; got ${JSON.stringify(value)}`);
}

/**
 * Records name the bare repository (`payments/api`), and the store compares it exactly: the repository's ARN
 * or an image URI, as a console or a build log shows them, would match nothing and read as "no records".
 * Read down to the name as `tollgate evaluate --repository` does; what is none of these is refused.
 */
function checkRepository(value: string): string {
  const name = repositoryOf(value);
  if (name !== undefined) return name;
  throw new AuditUsageError(
    `--repository: expected an ECR repository name (payments/api), its ARN (arn:aws:ecr:REGION:ACCOUNT:repository/payments/api) or an image URI naming it; got ${JSON.stringify(value)}`,
  );
}

/** The source's options, on every subcommand so they can follow it (`tollgate audit list --table T`). */
function sourceOptions(command: Command): Command {
  return (
    command
      .option(
        '--store <dir>',
        'folder of the local store that `tollgate demo` fills (dynalite)',
        '.tollgate/db',
      )
      // A --store given with --table would be silently unread: an auditor would think the store was searched.
      .addOption(
        new Option(
          '--table <name>',
          'read this deployed DynamoDB table instead of the local store (not with --store)',
        ).conflicts('store'),
      )
      .option(
        '--region <region>',
        'AWS region of --table (default: AWS_REGION, AWS_DEFAULT_REGION, then the profile)',
      )
      .option(
        '--profile <name>',
        'named profile for --table, from ~/.aws/config and ~/.aws/credentials (default: AWS_PROFILE, then the default chain)',
      )
  );
}

/** The filters of `list`, shared with `export`. */
function filterOptions(command: Command): Command {
  return command
    .option('--pipeline <name>', "one pipeline's records (its chain)")
    .option(
      '--since <time>',
      'records at or after: 2026-11-01, 2026-11-01T12:00:00Z, or ago: 90m, 12h, 30d, 2w',
    )
    .option(
      '--until <time>',
      'records before (a date alone: up to the end of that day); same forms as --since',
    )
    .addOption(
      new Option(
        '--outcome <outcome>',
        "records of decisions with this outcome, the policy's (with --type decision: the decisions alone; a person may have answered otherwise: see resolution records)",
      ).choices(OUTCOMES),
    )
    .option(
      '--digest <digest>',
      'records about this image digest: sha256: and all 64 hex digits (the IMAGE column shows 12; "show" or --format json has it whole)',
    )
    .option(
      '--repository <name>',
      'records about images of this repository: its name (payments/api), its ARN, or an image URI naming it',
    )
    .option(
      '--reviewer <who>',
      'resolutions by this person: the CloudTrail identity ARN, or its last part(s) (alice, SecurityEngineer/alice); either is served by an index',
    )
    .option(
      '--vulnerability <id>',
      'decisions that saw this vulnerability (CVE-2024-45490; CVE and GHSA ids in any case, others as written)',
      vulnerabilityId,
    )
    .addOption(new Option('--type <type>', 'records of this kind').choices(TYPES))
    .addOption(
      new Option(
        '--state <state>',
        'resolution records of approvals that ended so: SUCCEEDED is a release that went through, whoever answered (a person before any decision too)',
      ).choices(RESOLUTION_STATES),
    )
    .addOption(
      new Option('--page-size <n>', 'items per DynamoDB page (tests and tuning)')
        .argParser(positiveInteger('--page-size'))
        .hideHelp(),
    )
    .addOption(
      new Option('--now <iso-8601>', 'the time relative --since/--until count back from (tests)').hideHelp(),
    );
}

interface RawFilterOptions extends SourceOptions {
  order: 'newest' | 'oldest';
  pipeline?: string;
  since?: string;
  until?: string;
  outcome?: Outcome;
  digest?: string;
  repository?: string;
  reviewer?: string;
  vulnerability?: string;
  type?: AuditRecordType;
  state?: (typeof RESOLUTION_STATES)[number];
  pageSize?: number;
  now?: string;
}

/**
 * What the user typed and the instant it was read as: the two differ for a time ago, and for a date alone
 * as --until (the end of that day, the next day's midnight), which the instant alone would not explain.
 */
function timeAsGiven(value: string, at: Date, bound: 'since' | 'until'): string {
  const iso = at.toISOString();
  if (value === iso) return value;
  const dateOnly = /^\d{4}-\d{2}-\d{2}$/.test(value);
  return `${value} (${dateOnly && bound === 'until' ? 'the end of that day, ' : ''}${iso})`;
}

function queryOf(opts: RawFilterOptions): AuditFilter {
  let now = new Date();
  if (opts.now !== undefined) {
    now = parseTime(opts.now, new Date(), 'since');
  }
  const since = opts.since !== undefined ? parseTime(opts.since, now, 'since') : undefined;
  const until = opts.until !== undefined ? parseTime(opts.until, now, 'until') : undefined;
  if (since && until && since.getTime() >= until.getTime()) {
    throw new AuditUsageError(
      `--since ${timeAsGiven(opts.since as string, since, 'since')} is not before --until ${timeAsGiven(opts.until as string, until, 'until')}: nothing can match`,
    );
  }
  const filter: { -readonly [K in keyof AuditFilter]: AuditFilter[K] } = {};
  if (opts.pipeline !== undefined) filter.pipeline = checkPipeline(opts.pipeline);
  if (since) filter.since = since;
  if (until) filter.until = until;
  if (opts.outcome !== undefined) filter.outcome = opts.outcome;
  if (opts.digest !== undefined) filter.digest = checkDigest(opts.digest);
  if (opts.repository !== undefined) filter.repository = checkRepository(opts.repository);
  if (opts.vulnerability !== undefined) {
    // Only decisions list vulnerabilities: with another kind, or a filter of resolutions, nothing could
    // match, and "no records match" would read as "no release saw it".
    if (opts.type !== undefined && opts.type !== 'decision') {
      throw new AuditUsageError(
        `--vulnerability is on decision records; --type ${opts.type} records have none`,
      );
    }
    const other =
      opts.state !== undefined ? '--state' : opts.reviewer !== undefined ? '--reviewer' : undefined;
    if (other !== undefined) {
      throw new AuditUsageError(
        `--vulnerability is on decision records, ${other} on resolution records: no record has both`,
      );
    }
    filter.vulnerability = opts.vulnerability;
  }
  if (opts.type !== undefined) filter.type = opts.type;
  if (opts.state !== undefined) {
    if (opts.type !== undefined && opts.type !== 'resolution') {
      throw new AuditUsageError(`--state is on resolution records; --type ${opts.type} records have none`);
    }
    filter.state = opts.state;
  }
  if (opts.reviewer === undefined) return filter;
  // `alice`, `SecurityEngineer/alice` or the whole identity ARN: the store files resolutions under each.
  const reviewer = opts.reviewer.trim().replace(/^\/+/, '');
  if (reviewer === '')
    throw new AuditUsageError('--reviewer: expected an identity ARN or its last part, e.g. alice');
  if (opts.type !== undefined && opts.type !== 'resolution') {
    throw new AuditUsageError(`--reviewer is on resolution records; --type ${opts.type} records have none`);
  }
  return { ...filter, reviewer };
}

// ── list ──────────────────────────────────────────────────────────────────────────────────────────

/**
 * A decision's vulnerability ids are cut when it saw too many (shared/audit/entry.ts), and only the ids it
 * kept are indexed: `--vulnerability` cannot find such a decision by an id it left out, and would read as
 * "no decision saw it". Says on stderr (stdout may be CSV or JSON) how many decisions of the range were cut
 * and could have seen the id. A cut list is a sorted prefix of the ids (entry.ts sorts, then cuts), so one
 * whose last kept id sorts after the id, without listing it, did not see it. Counting reads every decision of
 * the range, so it is done only when the range is narrowed by an index (--since, --pipeline, --digest,
 * --repository); otherwise the note says so instead of turning an indexed query into a read of the whole
 * table. The answer is already on stdout when this runs: a failed count is said in the note, never an error,
 * which would break "exit 1, nothing on stdout" and mark a complete export as partial.
 */
async function truncatedNote(
  audit: Source['audit'],
  query: AuditFilter,
  source: string | undefined,
): Promise<string | undefined> {
  const id = query.vulnerability;
  // Only decisions list vulnerabilities: with a filter only other records have, nothing could be missed.
  if (id === undefined || (query.type !== undefined && query.type !== 'decision')) return undefined;
  if (query.reviewer !== undefined || query.state !== undefined) return undefined;
  const find = `find them with the same filters, --type decision in place of --vulnerability and --format csv (column vulnerabilitiesTruncated), then "tollgate audit show" each`;
  const what = `decision(s) whose vulnerability id list was cut (vulnerabilitiesTruncated: more than ${VULNERABILITY_LIMIT.toLocaleString('en-US')} ids, or too large a record)`;
  const { vulnerability: _, ...range } = query;
  if (
    range.since === undefined &&
    range.pipeline === undefined &&
    range.digest === undefined &&
    range.repository === undefined
  ) {
    return `note: ${what} may have seen ${id} without listing it, and are not in this answer; they are counted only in a range narrowed by --since, --pipeline, --digest or --repository (counting here would read every decision of the table): ${find}`;
  }
  let cut = 0;
  try {
    for await (const record of audit.list({ ...range, type: 'decision' })) {
      if (record.vulnerabilitiesTruncated && mayHaveSeen(record.vulnerabilities, id)) cut++;
    }
  } catch (e) {
    const reason = explain(e, source).split('\n')[0];
    return `note: decisions whose vulnerability ids were cut were not counted: ${reason}`;
  }
  if (cut === 0) return undefined;
  return `note: ${cut} ${what} in this range do not list ${id} but may have seen it, and are not in this answer: ${find}`;
}

/**
 * Whether a decision whose id list was cut to `kept` could have seen `id`: it left out only ids that sort
 * after its last kept one, in the order of entry.ts's `sort()` (UTF-16 code units, as `<` compares strings).
 */
function mayHaveSeen(kept: readonly string[], id: string): boolean {
  if (kept.includes(id)) return false;
  const last = kept.at(-1);
  return last === undefined || last < id;
}

interface RawListOptions extends RawFilterOptions {
  format: 'table' | 'json' | 'csv';
  limit?: number;
  stats?: boolean;
}

async function runList(opts: RawListOptions): Promise<void> {
  await withSource(
    opts,
    () => queryOf(opts),
    async ({ audit, name }, query) => {
      // A listing is what its reader asked for and is printed whole at the end (aligned columns need every
      // row; an error must leave stdout empty). `export` is the command for everything, streamed.
      const found: AuditRecord[] = [];
      let more = false;
      const pageSize = opts.pageSize ?? DEFAULT_PAGE_SIZE;
      for await (const record of audit.list(query, { pageSize, order: opts.order })) {
        if (opts.limit !== undefined && found.length >= opts.limit) {
          more = true;
          break;
        }
        found.push(record);
      }
      if (opts.format === 'json') await write(`${JSON.stringify(found, null, 2)}\n`);
      else if (opts.format === 'csv') await write(csvHeader() + found.map(csvRow).join(''));
      else if (found.length === 0) process.stderr.write('no records match\n');
      else await write(renderTable(found));
      if (more) {
        process.stderr.write(
          `more records match: showing the first ${opts.limit}; raise --limit, narrow the filters, or use "tollgate audit export"\n`,
        );
      }
      if (opts.stats) {
        const { scanned, fetched, returned, requests, index, markers, markerRecords } = audit.stats;
        const pending =
          markers > 0 ? `, ${markers} pending marker(s) and ${markerRecords} of their record(s) by key` : '';
        process.stderr.write(
          `served by ${index}: ${scanned} item(s) read by Query${fetched > 0 ? ` and ${fetched} record(s) by key` : ''}${pending} for ${returned} record(s), in ${requests} request(s)\n`,
        );
      }
      // After --stats: counting is another read, which would replace the answer's figures.
      const note = await truncatedNote(audit, query, name);
      if (note) process.stderr.write(`tollgate: ${note}\n`);
      return AUDIT_EXIT.OK;
    },
  );
}

// ── show ──────────────────────────────────────────────────────────────────────────────────────────

/**
 * Which check `show` marks ✗ (renderShow), if any: the record must hash to its hash, and link to the record
 * before it (the genesis hash for record 1). `previous` is the hash of the record before, null when none.
 */
function chainProblem(record: AuditRecord, computed: string, previous: string | null): string | undefined {
  const at = `${record.pipeline}#${record.seq}`;
  if (computed !== record.hash)
    return `${at}: its content hashes to ${computed}, not to its hash ${record.hash}`;
  if (record.seq === 1) {
    return record.prevHash === GENESIS
      ? undefined
      : `${at}: record 1 must chain to the genesis hash; its prevHash is ${record.prevHash}`;
  }
  if (previous === null) return `${at}: record ${record.seq - 1}, which it links to, is missing`;
  return previous === record.prevHash
    ? undefined
    : `${at}: its prevHash is ${record.prevHash}, but record ${record.seq - 1} has hash ${previous}`;
}

/** `payments-api#3` or `payments-api/3`. Pipeline names hold neither `#` nor `/`; the last one splits. */
export function parseRecordRef(ref: string): { pipeline: string; seq: number } {
  const m = /^(.+)[#/](\d+)$/.exec(ref.trim());
  if (!m || Number(m[2]) < 1) {
    throw new AuditUsageError(
      `${JSON.stringify(ref)}: expected a record as <pipeline>#<seq> or <pipeline>/<seq>, e.g. payments-api#2 (the RECORD column of "tollgate audit list")`,
    );
  }
  return { pipeline: m[1]!, seq: Number(m[2]) };
}

async function runShow(ref: string, opts: SourceOptions & { format: 'text' | 'json' }): Promise<void> {
  await withSource(
    opts,
    () => parseRecordRef(ref),
    async ({ audit, name }, { pipeline, seq }) => {
      const record = await audit.get(pipeline, seq);
      if (!record) {
        const head = await audit.head(pipeline);
        throw new AuditUsageError(
          head
            ? `no record ${pipeline}#${seq} in ${name}: the chain of ${pipeline} has records 1–${head.seq}`
            : `no record ${pipeline}#${seq} in ${name}: no records of pipeline ${pipeline} (see "tollgate audit list")`,
        );
      }
      // The item at the keys asked for may hold another record (forged into this chain, or moved): printed as
      // the evidence, it is not the record asked for, and the status says so.
      const misplaced =
        record.pipeline !== pipeline || record.seq !== seq
          ? `the item of ${pipeline}#${seq} holds record ${String(record.pipeline)}#${String(record.seq)}: not the record asked for (moved or forged; "tollgate audit verify --pipeline ${pipeline}" names it)`
          : undefined;
      const computed = hashOf(record);
      const previous = seq === 1 ? null : ((await audit.get(pipeline, seq - 1))?.hash ?? null);
      await write(
        opts.format === 'json'
          ? `${JSON.stringify(record, null, 2)}\n`
          : renderShow(record, { computed, previous }),
      );
      // The record is printed either way (it is the evidence), but a script that checks only the status must
      // not take a tampered record for a sound one: as verify, a broken chain is exit 2.
      // A record damaged by hand and re-hashed passes both checks: its damage is as much a tampering.
      const damage = recordDamage(record);
      const problem =
        misplaced ??
        chainProblem(record, computed, previous) ??
        (damage === undefined
          ? undefined
          : `${pipeline}#${seq} is not as Tollgate writes it: ${damage.field}: expected ${damage.expected}, got ${damage.got}`);
      if (problem === undefined) return AUDIT_EXIT.OK;
      // The text says a check's failure with its ✗; JSON is the record as stored, which says nothing of it,
      // and neither shows the place the record was read from.
      if (opts.format === 'json' || problem === misplaced)
        process.stderr.write(`tollgate: ${printable(problem)}\n`);
      return AUDIT_EXIT.CHAIN_BROKEN;
    },
  );
}

// ── verify ────────────────────────────────────────────────────────────────────────────────────────

interface RawVerifyOptions extends SourceOptions {
  pipeline?: string;
  format: 'text' | 'json';
  scan?: boolean;
  archive?: string;
}

interface VerifiedChain {
  pipeline: string;
  records: number;
  head: number | null;
  ok: boolean;
  problem?: { seq: number; kind: string; detail: string };
  archive?: ArchiveComparison;
}

/** `#3`, `#3–7`. */
const seqs = (r: SeqRange): string => (r.from === r.to ? `#${r.from}` : `#${r.from}–${r.to}`);

/** The archive's part of a chain's line: what matched, what is not archived yet, the first problem. */
function archiveSummary(c: ArchiveComparison): string {
  const first = c.problems[0];
  if (first) {
    const more = c.problems.length > 1 ? ` (and ${c.problems.length - 1} more)` : '';
    return `archive: ${first.kind} at ${c.pipeline}#${first.seq}: ${first.detail}${more}`;
  }
  const notes = [`archive: ${c.matched} of ${c.archived} archived record(s) match`];
  if (c.beforeArchive) notes.push(`${seqs(c.beforeArchive)} from before the archive`);
  if (c.notYetArchived) notes.push(`${seqs(c.notYetArchived)} not archived yet`);
  if (c.missingFromCopy > 0) notes.push(`${c.missingFromCopy} between them not in this partial copy`);
  return notes.join(', ');
}

async function runVerify(opts: RawVerifyOptions): Promise<void> {
  await withSource(
    opts,
    () => (opts.pipeline === undefined ? undefined : checkPipeline(opts.pipeline)),
    async ({ audit, name, simulated }) => {
      // The copy first: it names the chains the table must still have, whatever its registry says.
      const copy = opts.archive === undefined ? undefined : await readCopy(opts.archive, opts);
      // The registry once for the run: each chain's verify checks its chain against it, and reading it there
      // (a Query and every head) once per chain was quadratic in the pipelines.
      const registry = await audit.pipelines();
      const pipelines = opts.pipeline !== undefined ? [opts.pipeline] : [...registry];
      // Chains whose registry item is gone: found only by reading the whole table, so only when asked.
      const unlisted = opts.scan && opts.pipeline === undefined ? await audit.unlistedChains() : [];
      pipelines.push(...unlisted);
      // The REPO#, REVIEWER# and VULN# index items, which only a Scan can list: each record's are checked.
      const indexItems = opts.scan ? await audit.indexItemKeys(opts.pipeline) : undefined;
      if (copy && opts.pipeline === undefined) {
        const known = new Set(pipelines);
        pipelines.push(...copy.index.pipelines().filter((p) => !known.has(p)));
      }
      const results: VerifiedChain[] = [];
      for (const pipeline of pipelines) {
        // One chain at a time, streamed; the head is read first, so records appended meanwhile are checked as
        // links, never reported missing.
        const head = await audit.head(pipeline);
        const result = await audit.verify(pipeline, indexItems, registry);
        const problem = result.problems[0];
        const archive = copy
          ? await copy.index.compare(pipeline, audit.chain(pipeline), {
              whole: copy.read.whole,
              now: new Date(),
              simulated,
            })
          : undefined;
        results.push({
          pipeline,
          records: result.records,
          head: head?.seq ?? null,
          ok: result.ok && (archive === undefined || archive.problems.length === 0),
          ...(problem ? { problem: { seq: problem.seq, kind: problem.kind, detail: problem.detail } } : {}),
          ...(archive ? { archive } : {}),
        });
      }
      if (
        opts.pipeline !== undefined &&
        results[0]?.records === 0 &&
        results[0].head === null &&
        results[0].ok &&
        (results[0].archive?.archived ?? 0) === 0
      ) {
        throw new AuditUsageError(
          `no records of pipeline ${opts.pipeline} in ${name}${copy ? ` or ${copy.read.name}` : ''}`,
        );
      }
      const bad = results.filter((r) => !r.ok);
      // The chain's own problem first: the archive's comparison of a broken chain says less.
      const firstOf = (r: VerifiedChain) => r.problem ?? r.archive?.problems[0];
      const first = bad[0];
      const firstProblem = first ? firstOf(first) : undefined;
      const total = results.reduce((n, r) => n + r.records, 0);
      if (opts.format === 'json') {
        await write(
          `${JSON.stringify(
            {
              ok: bad.length === 0,
              records: total,
              firstProblem:
                first && firstProblem ? { pipeline: first.pipeline, ...pick(firstProblem) } : null,
              ...(copy
                ? {
                    archive: {
                      location: copy.read.name,
                      whole: copy.read.whole,
                      objects: copy.read.objects,
                      ...(copy.read.versions !== undefined ? { versions: copy.read.versions } : {}),
                      lines: copy.index.lines,
                      records: copy.index.records,
                    },
                  }
                : {}),
              pipelines: results,
            },
            null,
            2,
          )}\n`,
        );
      } else {
        const width = Math.max(8, ...results.map((r) => r.pipeline.length));
        const lines = results.map((r) => {
          const chain = r.problem
            ? `${String(r.records).padStart(6)} record(s) read: ${r.problem.kind} at ${r.pipeline}#${r.problem.seq}: ${r.problem.detail}`
            : `${String(r.records).padStart(6)} record(s) verified`;
          const archive = r.archive ? `; ${archiveSummary(r.archive)}` : '';
          return `${r.ok ? '✓' : '✗'} ${r.pipeline.padEnd(width)}  ${printable(chain + archive)}`;
        });
        if (copy) {
          const versions =
            copy.read.versions !== undefined && copy.read.versions !== copy.read.objects
              ? ` (${copy.read.versions} version(s))`
              : '';
          lines.push(
            `Archive: ${copy.index.records} record(s) in ${copy.read.objects} object(s)${versions} of ${copy.read.name}${copy.read.whole ? '' : ' (a partial copy: records it lacks between others are counted, not failed)'}`,
          );
        }
        lines.push(
          first && firstProblem
            ? printable(
                `FAILED: ${bad.length} of ${results.length} chain(s) do not verify; the first bad record is ${first.pipeline}#${firstProblem.seq} (${firstProblem.kind}): ${firstProblem.detail}`,
              )
            : `OK: ${total} record(s) in ${results.length} chain(s) verified${copy ? ', and every archived record is in the table unchanged' : ''}`,
        );
        await write(`${lines.join('\n')}\n`);
      }
      return bad.length === 0 ? AUDIT_EXIT.OK : AUDIT_EXIT.CHAIN_BROKEN;
    },
  );
}

const pick = (p: { seq: number; kind: string; detail: string }) => ({
  seq: p.seq,
  kind: p.kind,
  detail: p.detail,
});

/** Reads the copy named by --archive into an index (the SDK and the reader are loaded only then). */
async function readCopy(location: string, opts: RawVerifyOptions) {
  const [{ ArchiveIndex }, { readArchive }] = await Promise.all([
    import('../shared/audit/archive-compare.js'),
    import('./archive-source.js'),
  ]);
  const index = new ArchiveIndex();
  const read = await readArchive(location, index, {
    ...(opts.pipeline !== undefined ? { pipeline: opts.pipeline } : {}),
    ...(opts.region !== undefined ? { region: opts.region } : {}),
    ...(opts.profile !== undefined ? { profile: opts.profile } : {}),
  });
  return { index, read };
}

// ── export ────────────────────────────────────────────────────────────────────────────────────────

interface RawExportOptions extends RawFilterOptions {
  format: 'jsonl' | 'csv';
}

async function runExport(opts: RawExportOptions): Promise<void> {
  const pageSize = opts.pageSize ?? DEFAULT_PAGE_SIZE;
  await withSource(
    opts,
    () => queryOf(opts),
    async ({ audit, name }, query) => {
      const line = opts.format === 'csv' ? csvRow : (r: AuditRecord) => `${JSON.stringify(r)}\n`;
      if (opts.format === 'csv') await write(csvHeader());
      // One page of text at a time: what is held is one page, whatever the export's size.
      let chunk = '';
      let n = 0;
      for await (const record of audit.list(query, { pageSize, order: opts.order })) {
        if (pipeClosed) break;
        chunk += line(record);
        if (++n % pageSize === 0) {
          await write(chunk);
          chunk = '';
        }
      }
      await write(chunk);
      const note = pipeClosed ? undefined : await truncatedNote(audit, query, name);
      if (note) process.stderr.write(`tollgate: ${note}\n`);
      return AUDIT_EXIT.OK;
    },
  );
}

// ── archive ───────────────────────────────────────────────────────────────────────────────────────

interface RawArchiveOptions extends SourceOptions {
  bucket: string;
  pipeline?: string;
  since?: string;
  until?: string;
  dryRun?: boolean;
  now?: string;
}

/** Records per batch, as the archive's event source mapping delivers them: objects of the same size. */
const ARCHIVE_BATCH = 1000;

/** A failed PUT as one line: the object, S3's error, and what writing needs when it was refused. */
function writeError(uri: string, e: unknown): ArchiveWriteError {
  const name = e instanceof Error ? e.name : 'Error';
  const message = e instanceof Error ? e.message : String(e);
  const hint = /AccessDenied|Forbidden/i.test(`${name} ${message}`)
    ? ' (writing the archive needs s3:PutObject on its records/ and kms:GenerateDataKey on its key: tollgate.archive.grantArchive gives them)'
    : '';
  return new ArchiveWriteError(`writing ${uri}: ${name}: ${message}${hint}`, { cause: e });
}

/** What makes a record unarchivable, as the archive's reader says it; undefined when it reads. */
function unarchivable(read: () => unknown): string | undefined {
  try {
    read();
    return undefined;
  } catch (e) {
    if (e instanceof Error && e.name === 'ArchiveLineError')
      return e.message.replace(/^the table, line 1: /, '');
    throw e;
  }
}

/** `s3://BUCKET`: the archive writes under records/ only, so a prefix other than that is refused. */
function archiveBucket(uri: string): string {
  if (!uri.startsWith('s3://')) {
    throw new AuditUsageError(
      `--bucket ${uri}: expected s3://BUCKET, the archive bucket (its objects go under records/, named as the archive function names them)`,
    );
  }
  const { bucket, prefix } = parseS3Uri(uri, '--bucket');
  if (prefix !== 'records/' && prefix !== 'records') {
    throw new AuditUsageError(
      `--bucket ${uri}: the archive writes under records/ only, named as the archive function names them; got the prefix ${JSON.stringify(prefix)}`,
    );
  }
  return bucket;
}

/**
 * Writes to the archive bucket the table's records it lacks, as the archive function writes them: the same
 * objects (functions/archive/layout.ts), the same create-only PUT (functions/archive/put.ts). What the bucket
 * holds is read first, every version of the records' days (a record is archived under its own day), so a
 * record already archived, by the function or by an earlier run, is never written again.
 */
async function runArchive(opts: RawArchiveOptions): Promise<void> {
  await withSource(
    // The bucket takes --region and --profile, as verify's s3:// archive does, with the local store too.
    { ...opts, archive: opts.bucket },
    () => ({ bucket: archiveBucket(opts.bucket), filter: queryOf({ ...opts, order: 'oldest' }) }),
    async ({ audit, name }, { bucket, filter }) => {
      const [
        { ArchiveIndex, parseArchiveLine },
        source,
        layout,
        { putArchiveObject, isConflict },
        { canonical },
      ] = await Promise.all([
        import('../shared/audit/archive-compare.js'),
        import('./archive-source.js'),
        import('../functions/archive/layout.js'),
        import('../functions/archive/put.js'),
        import('../shared/audit/chain.js'),
      ]);
      const s3 = source.s3ClientOf(opts);
      const index = new ArchiveIndex();
      const daysRead = new Set<string>();
      const conflicts: string[] = [];
      const refused: string[] = [];
      let totalWritten = 0;
      let totalObjects = 0;
      let totalAlready = 0;
      let totalRecords = 0;
      try {
        const pipelines = filter.pipeline !== undefined ? [filter.pipeline] : await audit.pipelines();
        for (const pipeline of pipelines) {
          // One chain at a time, in seq order; --since/--until on the record's time.
          const records: AuditRecord[] = [];
          let inChain = 0;
          // Refused records are the chain's too: the total counts them, so "3 of 4" says one was not written.
          const refusedBefore = refused.length;
          for await (const record of audit.chain(pipeline)) {
            inChain++;
            // Checked before the time filters: a time that is no time would fall outside any range, unsaid.
            if (layout.partitionDate(record.time) === undefined) {
              throw new AuditUsageError(
                `${pipeline}#${record.seq} cannot be archived: its time ${JSON.stringify(record.time)} is not an ISO-8601 instant (the archive function refuses it too)`,
              );
            }
            const time = Date.parse(record.time);
            if (filter.since && !(time >= filter.since.getTime())) continue;
            if (filter.until && !(time < filter.until.getTime())) continue;
            // What the archive cannot hold, the function refuses: a record of another chain, or one that is
            // no audit record (its hash or place malformed). Locked in the bucket, it would make every later
            // read of the archive fail on its line.
            const problem =
              record.pipeline !== pipeline
                ? `it names chain ${JSON.stringify(record.pipeline)}, not the chain it is stored in`
                : unarchivable(() => parseArchiveLine(canonical(record), { object: 'the table', line: 1 }));
            if (problem !== undefined) {
              refused.push(
                `${pipeline}#${record.seq} not written: ${problem} (the archive function refuses it too; "tollgate audit verify" names it)`,
              );
              continue;
            }
            records.push(record);
          }
          if (inChain === 0 && filter.pipeline !== undefined) {
            throw new AuditUsageError(`no records of pipeline ${pipeline} in ${name}`);
          }
          for (const day of new Set(records.map((r) => layout.partitionDate(r.time) as string))) {
            if (daysRead.has(day)) continue;
            daysRead.add(day);
            await source.readBucketVersions(
              s3,
              bucket,
              `${layout.RECORDS_PREFIX}${layout.PARTITION}=${day}/`,
              index,
              filter.pipeline,
            );
          }
          const missing: AuditRecord[] = [];
          let already = 0;
          for (const record of records) {
            const held = index.hashAt(record.pipeline, record.seq);
            if (held === record.hash) already++;
            else if (held === undefined) missing.push(record);
            else
              conflicts.push(
                `${pipeline}#${record.seq} not written: the archive holds another record there (${held.slice(0, 12)}…, the table's is ${record.hash.slice(0, 12)}…): see "tollgate audit verify --archive s3://${bucket}"`,
              );
          }
          let written = 0;
          let objects = 0;
          for (let i = 0; i < missing.length; i += ARCHIVE_BATCH) {
            for (const object of layout.archiveObjects(missing.slice(i, i + ARCHIVE_BATCH))) {
              const range =
                object.firstSeq === object.lastSeq
                  ? `#${object.firstSeq}`
                  : `#${object.firstSeq}–${object.lastSeq}`;
              if (opts.dryRun) {
                await write(
                  `would write s3://${bucket}/${object.key} (${pipeline} ${range}, ${object.records} record(s))\n`,
                );
                written += object.records;
                objects++;
                continue;
              }
              let result: 'written' | 'already';
              try {
                result = await putArchiveObject(s3, bucket, object, { attempts: 3, baseMs: 200 });
              } catch (e) {
                // Another PUT of the key still in flight after the retries: it ends with the object there.
                if (!isConflict(e)) throw writeError(`s3://${bucket}/${object.key}`, e);
                result = 'already';
              }
              if (result === 'written') {
                written += object.records;
                objects++;
              } else already += object.records;
            }
          }
          for (const record of missing) {
            if (!layout.hashMatches(record)) {
              process.stderr.write(
                `tollgate: ${pipeline}#${record.seq}: its content does not hash to its hash; archived as it is, as the archive function does ("tollgate audit verify" says changed)\n`,
              );
            }
          }
          totalWritten += written;
          totalObjects += objects;
          totalAlready += already;
          totalRecords += records.length + (refused.length - refusedBefore);
          await write(
            printable(
              `${pipeline}: ${written} record(s) ${opts.dryRun ? 'to write' : 'written'} in ${objects} object(s), ${already} already archived\n`,
            ),
          );
        }
      } finally {
        s3.destroy();
      }
      const hidden = index.ownProblems();
      if (hidden.length > 0) {
        process.stderr.write(
          `tollgate: note: ${hidden.length} problem(s) of the bucket on the days read (${[...new Set(hidden.map((p) => p.kind))].join(', ')}): their records count as archived; see "tollgate audit verify --archive s3://${bucket}"\n`,
        );
      }
      for (const line of [...refused, ...conflicts]) process.stderr.write(`tollgate: ${printable(line)}\n`);
      const notWritten = refused.length + conflicts.length;
      await write(
        opts.dryRun
          ? `Dry run: ${totalWritten} of ${totalRecords} record(s) would be written in ${totalObjects} object(s) to s3://${bucket}/${layout.RECORDS_PREFIX}; ${totalAlready} already archived; nothing written\n`
          : `${notWritten === 0 ? 'OK' : 'INCOMPLETE'}: ${totalWritten} of ${totalRecords} record(s) written in ${totalObjects} object(s) to s3://${bucket}/${layout.RECORDS_PREFIX}; ${totalAlready} already archived${conflicts.length > 0 ? `; ${conflicts.length} not written (the archive holds other records there)` : ''}${refused.length > 0 ? `; ${refused.length} not written (not archivable)` : ''}\n`,
      );
      return notWritten === 0 ? AUDIT_EXIT.OK : AUDIT_EXIT.ERROR;
    },
  );
}

// ── the command group ─────────────────────────────────────────────────────────────────────────────

const SOURCE_HELP = `
Source:
  By default the local store that "npm start" (tollgate demo) fills: .tollgate/db (--store DIR for another).
  --table NAME reads a deployed table with the AWS SDK's default credential chain, as the AWS CLI does:
  --profile or AWS_PROFILE, --region or AWS_REGION / AWS_DEFAULT_REGION, SSO, environment keys, roles.
  Reading needs dynamodb:GetItem, dynamodb:Query and dynamodb:BatchGetItem on the table and its indexes, and
  kms:Decrypt on the stack's key (the table is encrypted with it).`;

const TIME_HELP = `
Times (--since, --until):
  2026-11-01               a date, UTC; as --until it includes that whole day
  2026-11-01T12:00:00Z     a timestamp with its zone (+02:00 works too); one without a zone is refused
  90m  12h  30d  2w  45s   that long ago
  --since is inclusive, --until exclusive: --since 2026-11-01 --until 2026-11-30 is all of November.`;

export function registerAudit(program: Command): void {
  const audit = program
    .command('audit')
    .description(
      'Query and verify the audit trail: every decision, every action taken on it, every person who resolved an escalation.',
    )
    .addHelpText(
      'after',
      `
Records are chained per pipeline: <pipeline>#<seq>, seq 1, 2, 3, … without gaps, each holding the SHA-256 of
the previous one. "verify" recomputes the chains.
${SOURCE_HELP}

Examples:
  tollgate audit list --outcome REJECT --since 30d             releases the gate stopped
  tollgate audit list --state SUCCEEDED --since 2026-11-01    approvals that went through, whoever answered
  tollgate audit list --type resolution --reviewer alice       escalations a person resolved, and who
  tollgate audit list --vulnerability CVE-2024-45490           decisions that saw a vulnerability
  tollgate audit show payments-api#2                           one record, whole (exit 2 if its hashes fail)
  tollgate audit verify                                        exit 2 and the first bad record if tampered
  tollgate audit export --since 2026-01-01 --until 2026-12-31 --format csv > audit-2026.csv
  tollgate audit list --table Tollgate-Table --region eu-west-1 --profile audit --since 7d
  tollgate audit archive --table Tollgate-Table --bucket s3://tollgate-archive --since 2d --dry-run`,
    );

  filterOptions(
    sourceOptions(
      audit.command('list').description('List the records that match every filter given, newest first.'),
    ),
  )
    .addOption(
      new Option('--format <format>', 'table (for terminals; summary cut), json (an array) or csv (RFC 4180)')
        .choices(['table', 'json', 'csv'])
        .default('table'),
    )
    .addOption(
      new Option('--order <order>', 'by record time').choices(['newest', 'oldest']).default('newest'),
    )
    .option(
      '--limit <n>',
      'print at most N records (a note on stderr says when more match)',
      positiveInteger('--limit'),
    )
    .option('--stats', 'say on stderr how many items were read from the table for the records returned')
    .addHelpText(
      'after',
      `
Filters combine (AND). Each is answered by a key or an index, never by reading the whole table.
--vulnerability finds a decision by the ids it lists; a decision that saw more than ${VULNERABILITY_LIMIT.toLocaleString('en-US')} (or too large a
list) kept only the first, sorted. A note on stderr counts the range's cut decisions that could have seen
the id: they do not list it, and their last kept id sorts before it (with --since, --pipeline, --digest or
--repository; without them it says they are not counted).
--repository takes the name (payments/api), the repository's ARN or an image URI; anything else is refused.
--reviewer and the outcome of a person's resolution are on "resolution" records; the decision they resolved
is the record before it in the same chain ("show" it). --vulnerability is on "decision" records alone:
with --type action or resolution, --state or --reviewer it is refused, as nothing could match.
${TIME_HELP}

CSV columns (always these, in this order):
  time, pipeline, seq, type, executionId, stage, action, repository, digest, tags, outcome, actor, reviewer,
  policy, policySha256, violations, vulnerabilities, summary, attempt (1, or more for a retried stage; for a gate the sweep found, the approval's run),
  state, status, answer, mode, wouldBe, vulnerabilitiesTruncated (true when the decision saw more than its
  vulnerabilities list: --vulnerability cannot find it by an id it left out) (see the README)
  Lists inside a field are space-separated. A value starting with = + - @ is prefixed with ' so that a
  spreadsheet shows it instead of running it as a formula.
${SOURCE_HELP}

Examples:
  tollgate audit list --outcome REJECT                                   what the gate stopped
  tollgate audit list --outcome APPROVE --type decision --since 30d      what the policy approved, last 30 days
  tollgate audit list --state SUCCEEDED --since 30d                      what went through (a person's too)
  tollgate audit list --type resolution --reviewer alice --format json   what alice approved or rejected
  tollgate audit list --vulnerability CVE-2024-45490 --outcome APPROVE   released with a known CVE?
  tollgate audit list --pipeline payments-api --since 2026-11-01 --until 2026-11-30
  tollgate audit list --digest sha256:3f9a1c0d… --format csv
  tollgate audit list --repository payments/api --type decision --limit 20`,
    )
    .action(async (opts: RawListOptions) => runList(opts));

  sourceOptions(
    audit
      .command('show')
      .argument('<record>', 'the record: <pipeline>#<seq> or <pipeline>/<seq> (the RECORD column of "list")')
      .description(
        'Print one record whole: gate, image, outcome and summary, violations, exceptions by state, counts, policy, action or resolution, and its place in the chain with both hashes checked.',
      ),
  )
    .addOption(
      new Option('--format <format>', 'text, or json (the record as stored)')
        .choices(['text', 'json'])
        .default('text'),
    )
    .addHelpText(
      'after',
      `
Exit status:
  0  the record is shown and its chain checks hold (✓): it hashes to its hash, and links to the record before
  2  shown, but a check fails (✗): its content does not hash to its hash, or it does not link to the record
     before (another hash, or that record missing), or it is not the record asked for (it names another
     pipeline or seq: moved or forged): "tollgate audit verify --pipeline P" for the whole chain; with
     --format json too
  1  no such record, a malformed reference, or the store cannot be read (a message on stderr, nothing on stdout)
${SOURCE_HELP}

Examples:
  tollgate audit show payments-api#2
  tollgate audit show orders-worker/4 --format json | jq .resolution
  tollgate audit show payments-api#2 --table Tollgate-Table --region eu-west-1`,
    )
    .action(async (record: string, opts: SourceOptions & { format: 'text' | 'json' }) =>
      runShow(record, opts),
    );

  sourceOptions(
    audit
      .command('verify')
      .description(
        "Recompute every pipeline's chain (or one): each record's hash from its content, each link to the record before, the gapless seq, the chain's head.",
      ),
  )
    .option('--pipeline <name>', "verify this pipeline's chain only")
    .option(
      '--scan',
      'also find chains the registry does not list (its item deleted by hand), and records whose REPO#, REVIEWER# or VULN# index item was deleted: reads the whole table, keys only (dynamodb:Scan)',
    )
    .option(
      '--archive <location>',
      'also check that every record of the archive is in the table unchanged: the archive bucket (s3://BUCKET, s3://BUCKET/records or s3://BUCKET/records/: the whole archive), a part of it (s3://BUCKET/PREFIX: a folder of keys whose trailing / is implied, e.g. records/date=2026-11-25; or, read as given, a month: records/date=2026-11, the objects of a day by the start of their name: records/date=2026-11-25/payments-api, or one object: ….jsonl), a folder it was synced to, or a .jsonl file (an earlier export)',
    )
    .addOption(
      new Option('--format <format>', 'text, or json (per pipeline, and the first problem)')
        .choices(['text', 'json'])
        .default('text'),
    )
    .addHelpText(
      'after',
      `
Exit status:
  0  every chain verifies (prints the records checked per pipeline), and with --archive every archived
     record is in the table unchanged
  2  a chain does not: names the first missing, changed or reordered record of each broken chain (and the
     first whose index keys were changed or, with --scan, whose index item was deleted: unindexed), and the first of all on the last line; with --archive, also an archived record the table rewrote (rewritten),
     no longer has (deleted) or that the archive holds twice (forked), or a table record between archived
     ones that the archive lacks (not-archived); of the bucket, an object hidden behind a delete marker
     (hidden) or with more than one version (overwritten), naming the key and its version ids
  1  the store, table or archive cannot be read (a message on stderr, nothing on stdout)

The archive (--archive):
  The table's chains verify against the table's own heads: someone who may write the table could rewrite a
  chain, re-hash it and move its head. The archive (S3 Object Lock) cannot be altered: --archive compares
  the two. Records written before the archive existed, and the last hour's, may not be in it: they are
  counted, not failed, as are records a partial copy lacks. The whole archive is s3://BUCKET,
  s3://BUCKET/records or s3://BUCKET/records/, or a folder it was synced to; a partial copy is a file, or
  any other prefix (a folder of keys: records/date=2026-11-25 is records/date=2026-11-25/; read as given
  are the start of a date, records/date=2026-11, the start of names in a day's folder,
  records/date=2026-11-25/payments-api, and an object's key, ….jsonl, as verify's problems and Athena's
  "$path" name it). A record the whole archive lacks that is
  older than an hour and younger than the archive's earliest, or dated in the future, fails (not-archived):
  the archive stopped, or the chain was rewritten after it did.
  The bucket is read whole: every version of every object (ListObjectVersions, then GetObject by version
  id), so a record hidden behind a delete marker or under a newer version is still compared, and the
  object is reported (hidden, overwritten). Reading it needs s3:ListBucketVersions and s3:GetObjectVersion
  on it and kms:Decrypt on its key (tollgate.archive.grantQuery gives them). A synced folder holds only the
  current versions: aws s3 sync s3://BUCKET/records ./archive
${SOURCE_HELP}

Examples:
  tollgate audit verify
  tollgate audit verify --pipeline payments-api
  tollgate audit verify --table Tollgate-Table --region eu-west-1 --format json
  tollgate audit verify --table Tollgate-Table --archive s3://tollgate-archive-bucket --region eu-west-1`,
    )
    .action(async (opts: RawVerifyOptions) => runVerify(opts));

  filterOptions(
    sourceOptions(
      audit
        .command('export')
        .description(
          'Write the records of a time range (and any filter of "list") as JSON lines or CSV, streamed page by page: any size, little memory.',
        ),
    ),
  )
    .addOption(
      new Option('--format <format>', 'jsonl (one record per line, as stored) or csv (RFC 4180, as "list")')
        .choices(['jsonl', 'csv'])
        .default('jsonl'),
    )
    .addOption(
      new Option('--order <order>', 'by record time').choices(['newest', 'oldest']).default('oldest'),
    )
    .addHelpText(
      'after',
      `
Without --since and --until, everything. The output is written as each page is read; an error part way
leaves a partial output and exit status 1. With --vulnerability, a note on stderr counts the decisions whose
id list was cut, as "list" says.
${TIME_HELP}
${SOURCE_HELP}

Examples:
  tollgate audit export --since 2026-01-01 --until 2026-12-31 > audit-2026.jsonl
  tollgate audit export --since 30d --format csv > last-30-days.csv
  tollgate audit export --since 2026-10-01 --until 2026-10-31 --table Tollgate-Table --region eu-west-1 | gzip > 2026-10.jsonl.gz`,
    )
    .action(async (opts: RawExportOptions) => runExport(opts));

  sourceOptions(
    audit
      .command('archive')
      .description(
        "Write to the archive bucket the table's records it lacks (the batches its function gave up on), as the function writes them; records already archived are not written again.",
      ),
  )
    .requiredOption('--bucket <s3-uri>', 'the archive bucket: s3://BUCKET (objects go under records/)')
    .option('--pipeline <name>', "this pipeline's chain only")
    .option(
      '--since <time>',
      'records at or after (their time): 2026-11-01, 2026-11-01T12:00:00Z, or ago: 90m, 12h, 30d, 2w',
    )
    .option('--until <time>', 'records before; same forms as --since')
    .option('--dry-run', 'print the objects that would be written, and write nothing')
    .addOption(
      new Option('--now <iso-8601>', 'the time relative --since/--until count back from (tests)').hideHelp(),
    )
    .addHelpText(
      'after',
      `
When the archive function gives up on a batch (after its retries), the batch's stream positions go to its
failed-batches queue, which pages; the records are still in the table. Fix the cause, then run this: it
reads the chains from the table in seq order (--pipeline, --since and --until narrow it), reads what the
bucket holds on those records' days (every version: a record is always archived under its own day), and
writes the records it lacks as the function does: objects named by their records, one per day and
pipeline of each batch of ${ARCHIVE_BATCH}, each PUT create-only (If-None-Match: *, with a SHA-256 checksum).
An object already there (412, or 409 for a PUT of it in flight) is not written again. Run twice, or over
records already archived, it writes nothing. A record the bucket holds with another hash at its place is
not written (exit 1): "tollgate audit verify --archive" says which is which.

Prints per pipeline the records written and those already archived, then a total.

Exit status:
  0  every record is in the archive (written now or before); with --dry-run, every record would be
  1  the table or the bucket cannot be read, an object cannot be written, or a record was (or, with
     --dry-run, would be) left unwritten: the bucket holds another record at its place, or it is no record
     the archive can hold (a malformed hash, another chain's name); a message on stderr names each

Permissions: reading the table as the other commands do (below), and on the archive bucket
s3:ListBucketVersions, s3:GetObjectVersion and kms:Decrypt (tollgate.archive.grantQuery), and
s3:PutObject on records/ with kms:GenerateDataKey on the archive's key (tollgate.archive.grantArchive).
--region and --profile apply to the bucket too.
${TIME_HELP}
${SOURCE_HELP}

Examples:
  tollgate audit archive --table Tollgate-Table --bucket s3://tollgate-archive --since 2d --dry-run
  tollgate audit archive --table Tollgate-Table --bucket s3://tollgate-archive --since 2026-11-24 --until 2026-11-26
  tollgate audit archive --table Tollgate-Table --bucket s3://tollgate-archive --pipeline payments-api --region eu-west-1`,
    )
    .action(async (opts: RawArchiveOptions) => runArchive(opts));
}
