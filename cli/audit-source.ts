/**
 * Where `tollgate audit` reads records: the local store that `tollgate demo` fills (dynalite) or a deployed
 * table through the AWS SDK. Loaded by `cli/audit.ts` only when a command runs.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DescribeTableCommand, DynamoDBClient, type DynamoDBClientConfig } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { DynamoAuditStore } from '../adapters/dynamodb/audit-store.js';
import { startLocalDynamo } from '../adapters/dynamodb/local.js';
import { AuditUsageError } from './audit-format.js';
import { AUDIT_EXIT } from './exit.js';
import { TABLE_NAME } from './local-store.js';

export interface SourceOptions {
  store: string;
  table?: string;
  region?: string;
  profile?: string;
  /** `verify --archive`: an S3 archive takes --region and --profile too. */
  archive?: string;
}

export interface Source {
  readonly audit: DynamoAuditStore;
  /** `the local store .tollgate/db` / `table tollgate-prod (eu-west-1)`, for messages. */
  readonly name: string;
  /**
   * A local store: its records are dated by the scenarios that filled it, any day, so none dated past now is
   * a forgery (a deployed table's records are dated by events and Lambda's clock).
   */
  readonly simulated: boolean;
  close(): Promise<void>;
}

export async function openSource(options: SourceOptions): Promise<Source> {
  // The SDK's notice that a future release will need Node 22 is nine lines on stderr before every answer
  // (or before the one-line error): Tollgate's own `engines` says which Node it runs on.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  if (options.table === undefined) {
    const s3 = options.archive?.startsWith('s3://') === true;
    if (!s3 && (options.region !== undefined || options.profile !== undefined)) {
      throw new AuditUsageError(
        '--region and --profile are for a deployed table: add --table NAME (the local store needs neither)',
      );
    }
    return openLocal(options.store);
  }
  return openDeployed(options.table, options.region, options.profile);
}

async function openLocal(folder: string): Promise<Source> {
  // startLocalDynamo would create the store (a folder, then its database files): a read must not write, so
  // a folder that holds no store is said to hold none instead of answering "no records".
  if (!existsSync(folder)) {
    throw new AuditUsageError(
      `no local store in ${folder}: run "npm start" (tollgate demo) to fill it, name another folder with --store, or read a deployed table with --table NAME`,
    );
  }
  if (!statSync(folder).isDirectory()) {
    throw new AuditUsageError(`--store ${folder}: expected a folder (the local store); got a file`);
  }
  if (!existsSync(join(folder, 'CURRENT'))) {
    throw new AuditUsageError(
      `no local store in ${folder} (the folder holds no store's database): run "npm start" (tollgate demo) to fill it, or name another folder with --store`,
    );
  }
  // dynalite opens the folder's leveldb itself and throws from its own callback when that fails (another
  // process, a running `tollgate demo`, holds the folder's lock): no promise rejects, so the failure is
  // caught here, while the store is open, and said as an error of this command.
  const crashed = (e: unknown): void => {
    const text = e instanceof Error ? e.message : String(e);
    const locked = /lock|database is (closed|not open)/i.test(text);
    process.stderr.write(
      `tollgate: ${
        locked
          ? `the local store in ${folder} is in use by another process (a tollgate demo or simulate?); try again when it ends`
          : `the local store in ${folder} failed: ${text}`
      }\n`,
    );
    process.exit(AUDIT_EXIT.ERROR);
  };
  process.on('uncaughtException', crashed);
  const db = await startLocalDynamo({ path: folder }).catch((e: unknown) => {
    process.off('uncaughtException', crashed);
    throw e;
  });
  const close = async (): Promise<void> => {
    await db.close();
    process.off('uncaughtException', crashed);
  };
  try {
    await db.client.send(new DescribeTableCommand({ TableName: TABLE_NAME }));
  } catch (e) {
    await close();
    if (e instanceof Error && e.name === 'ResourceNotFoundException') {
      throw new AuditUsageError(
        `the local store in ${folder} has no table ${TABLE_NAME}: run "npm start" (tollgate demo) to fill it`,
      );
    }
    throw e;
  }
  return {
    audit: new DynamoAuditStore(db.client, TABLE_NAME, null),
    name: `the local store ${folder}`,
    simulated: true,
    close,
  };
}

async function openDeployed(table: string, region?: string, profile?: string): Promise<Source> {
  // As the AWS CLI: --profile over AWS_PROFILE, --region over AWS_REGION / AWS_DEFAULT_REGION / the profile's
  // region. @aws-sdk/credential-providers is not a dependency: the client's default chain (environment,
  // SSO, shared files, process, container and instance roles) reads the profile from AWS_PROFILE and from
  // the client's own `profile` setting, so both are set.
  if (profile !== undefined) process.env.AWS_PROFILE = profile;
  const config: DynamoDBClientConfig = {};
  if (profile !== undefined) config.profile = profile;
  const resolvedRegion = region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
  if (resolvedRegion !== undefined && resolvedRegion !== '') config.region = resolvedRegion;
  const doc = DynamoDBDocumentClient.from(new DynamoDBClient(config), {
    marshallOptions: { removeUndefinedValues: true, convertClassInstanceToMap: false },
    unmarshallOptions: { wrapNumbers: false },
  });
  return {
    audit: new DynamoAuditStore(doc, table),
    name: `table ${table}${resolvedRegion ? ` (${resolvedRegion})` : ''}`,
    simulated: false,
    close: async () => doc.destroy(),
  };
}
