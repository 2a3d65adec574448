/**
 * Where `tollgate audit verify --archive` reads the copy of the records: the archive bucket itself
 * (`s3://bucket[/prefix]`), a folder it was synced to (`aws s3 sync`), or JSON-lines files (an earlier
 * `tollgate audit export`). Loaded only when the flag is given.
 */
import { createReadStream, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import { GetObjectCommand, paginateListObjectsV2, S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { type ArchiveIndex, ArchiveLineError, parseArchiveLine } from '../shared/audit/archive-compare.js';
import { ArchiveReadError, AuditUsageError } from './audit-format.js';

export interface ArchiveSourceOptions {
  /** Only this chain's records are kept (the others are still read and checked as lines). */
  readonly pipeline?: string;
  readonly region?: string;
  readonly profile?: string;
  /** For tests: the client to read S3 with. */
  readonly s3?: S3Client;
}

/** What was read, for the report. */
export interface ArchiveRead {
  /** `s3://tollgate-archive-…/records/`, `the folder ./archive`, … */
  readonly name: string;
  /** Objects (or files) read. */
  readonly objects: number;
  /**
   * Whether the copy is the whole archive (the bucket's `records/`, or a folder it was synced to): then a
   * table record between archived ones that it lacks is a problem. A part of the bucket (another prefix, such
   * as one month) or a single file (an export, perhaps filtered) may lack records for no such reason.
   */
  readonly whole: boolean;
}

/** A JSON-lines object of the copy: what the archive writes (`.jsonl`) and what `audit export` writes. */
const isRecordsFile = (name: string): boolean => name.endsWith('.jsonl');

/** Reads every record of the copy at `location` into `index`, checking each line. */
export async function readArchive(
  location: string,
  index: ArchiveIndex,
  options: ArchiveSourceOptions = {},
): Promise<ArchiveRead> {
  if (location.startsWith('s3://')) return readBucket(location, index, options);
  return await readLocal(location, index, options);
}

function addLines(text: string, object: string, index: ArchiveIndex, pipeline: string | undefined): void {
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]?.replace(/\r$/, '') ?? '';
    if (line.trim() === '') continue;
    const record = parseArchiveLine(line, { object, line: i + 1 });
    if (pipeline === undefined || record.pipeline === pipeline) index.add(record, { object, line: i + 1 });
  }
}

/** A file's lines, one at a time: an export can be larger than a string may be. */
async function addFileLines(file: string, index: ArchiveIndex, pipeline: string | undefined): Promise<void> {
  const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  let n = 0;
  for await (const line of lines) {
    n++;
    if (line.trim() === '') continue;
    const record = parseArchiveLine(line, { object: file, line: n });
    if (pipeline === undefined || record.pipeline === pipeline) index.add(record, { object: file, line: n });
  }
}

async function readLocal(
  location: string,
  index: ArchiveIndex,
  options: ArchiveSourceOptions,
): Promise<ArchiveRead> {
  let stat: ReturnType<typeof statSync>;
  try {
    stat = statSync(location);
  } catch {
    throw new AuditUsageError(
      `--archive ${location}: no such file or folder (expected s3://BUCKET[/PREFIX], a folder the archive was synced to, or a .jsonl file)`,
    );
  }
  const files = stat.isDirectory() ? recordsFiles(location) : [location];
  if (files.length === 0) {
    throw new AuditUsageError(
      `--archive ${location}: the folder holds no .jsonl files (the archive's objects are records/date=YYYY-MM-DD/*.jsonl: sync them with "aws s3 sync s3://BUCKET/records ${location}/records")`,
    );
  }
  for (const file of files) {
    try {
      await addFileLines(file, index, options.pipeline);
    } catch (e) {
      if (e instanceof ArchiveLineError) throw e;
      throw new ArchiveReadError(`reading the archive ${file}: ${(e as Error).message}`, { cause: e });
    }
  }
  return {
    name: stat.isDirectory() ? `the folder ${location}` : location,
    objects: files.length,
    whole: stat.isDirectory(),
  };
}

/** Every .jsonl file under `folder`, at any depth, in path order (the archive's keys sort by date). */
function recordsFiles(folder: string): string[] {
  const found: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile() && isRecordsFile(entry.name)) found.push(path);
    }
  };
  walk(folder);
  return found.sort((a, b) => {
    const [x, y] = [relative(folder, a), relative(folder, b)];
    return x < y ? -1 : x > y ? 1 : 0;
  });
}

/** `s3://bucket/prefix` as its parts; the prefix is `records/` (where the archive writes) when none is given. */
export function parseS3Uri(uri: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(uri);
  // Bucket names: 3–63 characters, lower-case letters, digits, dots and hyphens.
  if (!m || !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(m[1] ?? '')) {
    throw new AuditUsageError(
      `--archive ${uri}: expected s3://BUCKET or s3://BUCKET/PREFIX with a valid bucket name`,
    );
  }
  return { bucket: m[1] as string, prefix: m[2] === undefined || m[2] === '' ? 'records/' : m[2] };
}

async function readBucket(
  uri: string,
  index: ArchiveIndex,
  options: ArchiveSourceOptions,
): Promise<ArchiveRead> {
  const { bucket, prefix } = parseS3Uri(uri);
  let s3 = options.s3;
  if (!s3) {
    // As the table's client (cli/audit-source.ts): --profile over AWS_PROFILE, --region over the environment.
    if (options.profile !== undefined) process.env.AWS_PROFILE = options.profile;
    const config: S3ClientConfig = {};
    if (options.profile !== undefined) config.profile = options.profile;
    const region = options.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
    if (region !== undefined && region !== '') config.region = region;
    s3 = new S3Client(config);
  }
  let objects = 0;
  let where = `s3://${bucket}/${prefix}`;
  try {
    for await (const page of paginateListObjectsV2({ client: s3 }, { Bucket: bucket, Prefix: prefix })) {
      for (const object of page.Contents ?? []) {
        const key = object.Key;
        if (key === undefined || !isRecordsFile(key)) continue;
        where = `s3://${bucket}/${key}`;
        const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        if (!got.Body) throw new Error('S3 returned no body');
        addLines(await got.Body.transformToString('utf-8'), where, index, options.pipeline);
        objects++;
      }
      where = `s3://${bucket}/${prefix}`;
    }
  } catch (e) {
    if (e instanceof ArchiveLineError) throw e;
    const name = e instanceof Error ? e.name : 'Error';
    const message = e instanceof Error ? e.message : String(e);
    const hint = /AccessDenied|Forbidden/i.test(`${name} ${message}`)
      ? ' (reading the archive needs s3:ListBucket and s3:GetObject on the bucket, and kms:Decrypt on its key)'
      : '';
    throw new ArchiveReadError(`reading the archive ${where}: ${name}: ${message}${hint}`, { cause: e });
  } finally {
    if (!options.s3) s3.destroy();
  }
  if (objects === 0) {
    throw new AuditUsageError(
      `--archive ${uri}: no .jsonl objects under s3://${bucket}/${prefix} (the archive writes records/date=YYYY-MM-DD/*.jsonl)`,
    );
  }
  return { name: `s3://${bucket}/${prefix}`, objects, whole: prefix === 'records/' };
}
