/**
 * Where `tollgate audit verify --archive` reads the copy of the records: the archive bucket itself
 * (`s3://bucket[/prefix]`), a folder it was synced to (`aws s3 sync`), or JSON-lines files (an earlier
 * `tollgate audit export`). Loaded only when the flag is given (and by `tollgate audit archive`, to know what
 * the bucket already holds).
 *
 * The bucket is read whole: every version of every object (ListObjectVersions, GetObject by VersionId), not
 * only the current ones a listing shows. Object Lock keeps a locked version, but a delete marker on top of it
 * (a lifecycle expiration rule puts one, and neither the lock nor the bucket policy's delete deny stops that)
 * or a newer version (once someone removes the policy's create-only rule) hides it from a plain listing and
 * from Athena: here its records are still read, and the object is reported (`hidden`, `overwritten`).
 */
import { createReadStream, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import {
  type DeleteMarkerEntry,
  GetObjectCommand,
  ListObjectVersionsCommand,
  type ObjectVersion,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { PARTITION, RECORDS_PREFIX } from '../functions/archive/layout.js';
import {
  type ArchiveIndex,
  ArchiveLineError,
  type ArchiveProblemKind,
  parseArchiveLine,
} from '../shared/audit/archive-compare.js';
import type { AuditRecord } from '../shared/audit/record.js';
import { ArchiveReadError, AuditUsageError, parseS3Uri } from './audit-format.js';

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
  /** Of a bucket: the object versions read (every version of every object, not only the current one). */
  readonly versions?: number;
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

/** Adds an object's records to `index`; returns its first record (of any pipeline), if it holds one. */
function addLines(
  text: string,
  object: string,
  index: ArchiveIndex,
  pipeline: string | undefined,
): AuditRecord | undefined {
  const lines = text.split('\n');
  let first: AuditRecord | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]?.replace(/\r$/, '') ?? '';
    if (line.trim() === '') continue;
    const record = parseArchiveLine(line, { object, line: i + 1 });
    first ??= record;
    if (pipeline === undefined || record.pipeline === pipeline) index.add(record, { object, line: i + 1 });
    else index.saw(record);
  }
  return first;
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
    else index.saw(record);
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

/** The S3 client of --region and --profile, as the table's (cli/audit-source.ts). */
export function s3ClientOf(options: { readonly region?: string; readonly profile?: string }): S3Client {
  // --profile over AWS_PROFILE, --region over the environment.
  if (options.profile !== undefined) process.env.AWS_PROFILE = options.profile;
  const config: S3ClientConfig = {};
  if (options.profile !== undefined) config.profile = options.profile;
  const region = options.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
  if (region !== undefined && region !== '') config.region = region;
  return new S3Client(config);
}

/** A key as listed: its versions and its delete markers, each newest first (as S3 lists them). */
interface KeyHistory {
  readonly key: string;
  readonly versions: { readonly id: string; readonly latest: boolean; readonly modified?: Date }[];
  readonly markers: { readonly id: string; readonly latest: boolean; readonly modified?: Date }[];
}

/**
 * Every key under `prefix` with all its versions and delete markers (ListObjectVersions, page by page with
 * KeyMarker and VersionIdMarker). S3 lists by key, a key's entries newest first; the SDK splits a page into
 * versions and delete markers, and a key's entries may run on to the next page: they are joined here.
 */
async function* keyHistories(s3: S3Client, bucket: string, prefix: string): AsyncGenerator<KeyHistory> {
  let pending: KeyHistory | undefined;
  let keyMarker: string | undefined;
  let versionIdMarker: string | undefined;
  for (;;) {
    const page = await s3.send(
      new ListObjectVersionsCommand({
        Bucket: bucket,
        Prefix: prefix,
        ...(keyMarker !== undefined ? { KeyMarker: keyMarker } : {}),
        ...(versionIdMarker !== undefined ? { VersionIdMarker: versionIdMarker } : {}),
      }),
    );
    const byKey = new Map<string, KeyHistory>();
    const entry = (key: string): KeyHistory => {
      let history = byKey.get(key);
      if (!history) {
        history = pending?.key === key ? pending : { key, versions: [], markers: [] };
        byKey.set(key, history);
      }
      return history;
    };
    // Versions and delete markers are read alike: each is one entry in its key's history.
    const add = (
      items: readonly (ObjectVersion | DeleteMarkerEntry)[] | undefined,
      list: 'versions' | 'markers',
    ) => {
      for (const v of items ?? []) {
        if (v.Key === undefined) continue;
        entry(v.Key)[list].push({
          id: v.VersionId ?? 'null',
          latest: v.IsLatest === true,
          ...(v.LastModified ? { modified: v.LastModified } : {}),
        });
      }
    };
    add(page.Versions, 'versions');
    add(page.DeleteMarkers, 'markers');
    if (pending && !byKey.has(pending.key)) {
      yield pending;
      pending = undefined;
    }
    const keys = [...byKey.keys()].sort();
    const truncated = page.IsTruncated === true;
    // The page's last key may have more versions on the next page.
    const last = truncated ? keys.pop() : undefined;
    for (const key of keys) yield byKey.get(key) as KeyHistory;
    pending = last === undefined ? undefined : byKey.get(last);
    if (!truncated) return;
    if (page.NextKeyMarker === undefined)
      throw new Error('S3 said the listing goes on but gave no NextKeyMarker');
    keyMarker = page.NextKeyMarker;
    versionIdMarker = page.NextVersionIdMarker;
  }
}

const when = (d: Date | undefined): string => (d ? `, ${d.toISOString()}` : '');

/** `payments-api-000000000001-000000000004-<hash>.jsonl`: the object's pipeline (as a key segment) and first seq. */
function placeOfKey(key: string): { pipeline: string; seq: number } | undefined {
  const m = /([^/]+)-(\d{12})-\d{12}-[0-9a-f]{16}\.jsonl$/.exec(key);
  return m ? { pipeline: m[1] as string, seq: Number(m[2]) } : undefined;
}

/**
 * Reads every version of every .jsonl object under `prefix` into `index` (by its version id: a delete
 * marker or a newer version hides nothing from it), and reports, as the archive's own problems, an object
 * hidden behind a delete marker (`hidden`) and one with more than one version (`overwritten`). Reads
 * nothing outside `prefix`; an empty prefix is not an error here.
 */
export async function readBucketVersions(
  s3: S3Client,
  bucket: string,
  prefix: string,
  index: ArchiveIndex,
  pipeline?: string,
): Promise<{ objects: number; versions: number }> {
  let objects = 0;
  let versions = 0;
  let where = `s3://${bucket}/${prefix}`;
  try {
    for await (const history of keyHistories(s3, bucket, prefix)) {
      const { key } = history;
      if (!isRecordsFile(key) || history.versions.length === 0) continue;
      const uri = `s3://${bucket}/${key}`;
      const hidden = history.markers.find((m) => m.latest);
      const plain = history.versions.length === 1 && history.markers.length === 0;
      // The oldest first: the original is the one held, a later version the one that differs.
      const oldestFirst = [...history.versions].reverse();
      let first: AuditRecord | undefined;
      for (const version of oldestFirst) {
        where = plain ? uri : `${uri} (version ${version.id})`;
        const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, VersionId: version.id }));
        if (!got.Body) throw new Error('S3 returned no body');
        const record = addLines(await got.Body.transformToString('utf-8'), where, index, pipeline);
        first ??= record;
        versions++;
      }
      objects++;
      where = `s3://${bucket}/${prefix}`;
      const problems: [ArchiveProblemKind, string][] = [];
      const listed = oldestFirst.map((v) => `${v.id}${when(v.modified)}`).join('; ');
      if (hidden) {
        problems.push([
          'hidden',
          `${uri} is hidden behind a delete marker (version ${hidden.id}${when(hidden.modified)}): a listing, a GET without a version id and Athena see nothing there; its version(s) ${listed} are still in the bucket and were read here (a lifecycle expiration rule, or a DeleteObject the bucket policy no longer forbids, puts a marker; Object Lock keeps the versions under it)`,
        ]);
      }
      if (history.versions.length > 1) {
        problems.push([
          'overwritten',
          `${uri} has ${history.versions.length} versions (${listed}; the latest last): the archive writes each object once (If-None-Match), so a later one was written with the bucket policy's create-only rule removed; Athena and a GET without a version id read only the latest; every version was read here`,
        ]);
      }
      if (problems.length === 0) continue;
      const place = first ?? placeOfKey(key);
      if (!place || (pipeline !== undefined && place.pipeline !== pipeline)) continue;
      for (const [kind, detail] of problems) {
        index.addProblem({ pipeline: place.pipeline, seq: place.seq, kind, detail });
      }
    }
  } catch (e) {
    if (e instanceof ArchiveLineError) throw e;
    const name = e instanceof Error ? e.name : 'Error';
    const message = e instanceof Error ? e.message : String(e);
    const hint = /AccessDenied|Forbidden/i.test(`${name} ${message}`) ? ` (${BUCKET_READ_NEEDS})` : '';
    throw new ArchiveReadError(`reading the archive ${where}: ${name}: ${message}${hint}`, { cause: e });
  }
  return { objects, versions };
}

/** What reading the bucket takes, for an AccessDenied. */
export const BUCKET_READ_NEEDS =
  'reading the archive needs s3:ListBucketVersions and s3:GetObjectVersion on the bucket, and kms:Decrypt on its key';

/** `records/date=2026`, `records/date=2026-11`: some of the archive's day partitions, by the start of their date. */
const DAYS_PREFIX = new RegExp(`^${RECORDS_PREFIX}${PARTITION}=\\d{4}(-\\d{1,2}){0,2}$`);
/** `records/date=2026-11-25/payments-api`: some of one day's objects, by the start of their name. */
const IN_A_DAY = new RegExp(`^${RECORDS_PREFIX}${PARTITION}=\\d{4}-\\d{2}-\\d{2}/`);

/**
 * The prefix of --archive as S3 will be asked for it. S3 lists by plain string prefix: `records` would also
 * list `records-old/…`, and, unequal to `records/`, would make the whole archive read as a partial copy
 * (whose gaps are not failed). So a prefix that names a folder of keys has its trailing slash implied. Kept
 * as given: a prefix that can only list the archive's own objects, so reads as a partial copy of them: an
 * object's key (`….jsonl`, as verify's problems and Athena's "$path" name them), the start of the names in
 * one day's folder (`records/date=2026-11-25/payments-api`, a pipeline's objects of that day), and the start
 * of a date (`records/date=2026-11`, a month); a whole date is its day's folder.
 */
function archivePrefix(prefix: string): string {
  if (prefix.endsWith('/') || prefix.endsWith('.jsonl') || IN_A_DAY.test(prefix)) return prefix;
  if (DAYS_PREFIX.test(prefix) && !/=\d{4}-\d{2}-\d{2}$/.test(prefix)) return prefix;
  return `${prefix}/`;
}

async function readBucket(
  uri: string,
  index: ArchiveIndex,
  options: ArchiveSourceOptions,
): Promise<ArchiveRead> {
  const parsed = parseS3Uri(uri);
  const { bucket } = parsed;
  const prefix = archivePrefix(parsed.prefix);
  const s3 = options.s3 ?? s3ClientOf(options);
  let read: { objects: number; versions: number };
  try {
    read = await readBucketVersions(s3, bucket, prefix, index, options.pipeline);
  } finally {
    if (!options.s3) s3.destroy();
  }
  if (read.objects === 0) {
    throw new AuditUsageError(
      `--archive ${uri}: no .jsonl objects under s3://${bucket}/${prefix} (expected the archive bucket, s3://BUCKET, or a folder of it such as s3://BUCKET/records/date=2026-11-25/: the archive writes records/date=YYYY-MM-DD/*.jsonl${prefix === parsed.prefix ? '' : `; a PREFIX names a folder, so ${JSON.stringify(parsed.prefix)} was read as ${JSON.stringify(prefix)}`})`,
    );
  }
  return {
    name: `s3://${bucket}/${prefix}`,
    objects: read.objects,
    versions: read.versions,
    whole: prefix === RECORDS_PREFIX,
  };
}
