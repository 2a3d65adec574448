import {
  DescribeImageScanFindingsCommand,
  type DescribeImageScanFindingsCommandOutput,
  DescribeImagesCommand,
  type ECRClient,
} from '@aws-sdk/client-ecr';
import type { ScanVerdict } from '../../shared/findings/finding.js';
import {
  ECR_FINDINGS_NOT_READY,
  type FindingsDocument,
  largestCounts,
  readFindingsDocument,
  shortOfCounts,
} from '../../shared/findings/readers.js';
import { FindingTable } from '../../shared/findings/table.js';
import { parseTimestamp } from '../../shared/findings/timestamps.js';
import type { EcrScanReadResult, ImageLocator, ImagesPort, TagResolution } from '../../shared/gate/ports.js';
import { DEFAULT_RETRY, nextPage, type RetryOptions, sendOptions, withRetries } from './retry.js';

/** `MaxResults` of DescribeImageScanFindings in the API model. */
const SCAN_FINDINGS_PAGE = 1000;

/**
 * What `ScanNotFoundException` means: ECR has not scanned the image (yet), which is the same, for the gate,
 * as a scan still running: wait for the scan event or the deadline, never decide on the empty table.
 */
export const NO_SCAN_YET: ScanVerdict = {
  complete: false,
  status: 'PENDING',
  reason: 'no scan found for the image',
};

const NO_STATUS: ScanVerdict = {
  complete: false,
  status: 'MISSING',
  reason: 'the ECR response has no imageScanStatus, so it cannot show that the scan completed',
};

const FINDINGS_MISSING: ScanVerdict = {
  complete: false,
  status: 'FINDINGS_MISSING',
  reason: 'the ECR response says the scan completed but carries no imageScanFindings',
};

/**
 * DescribeImageScanFindings' answers on the first page that no scan will ever come: the image was deleted
 * (a lifecycle policy, say) or its repository is gone. Final answers for the gate to decide on
 * (`scan.onUnsupported`), not faults to retry and dead-letter while the gate waits out its deadline.
 */
const GONE: ReadonlyMap<string | undefined, { status: string; what: string }> = new Map([
  ['ImageNotFoundException', { status: 'IMAGE_NOT_FOUND', what: 'the image' }],
  ['RepositoryNotFoundException', { status: 'REPOSITORY_NOT_FOUND', what: 'the repository' }],
]);

/** `imageScanCompletedAt` in epoch milliseconds; undefined when the page has none (or none the reader took). */
function completedAt(page: DescribeImageScanFindingsCommandOutput): number | undefined {
  const at = parseTimestamp(page.imageScanFindings?.imageScanCompletedAt);
  return typeof at === 'number' ? at : undefined;
}

function errorName(e: unknown): string | undefined {
  return e instanceof Error ? e.name : undefined;
}

/** The service's message, one line and short: it goes into an escalation's reason. */
function errorText(e: unknown): string {
  const text = (e instanceof Error ? e.message : String(e)).replace(/\s+/g, ' ').trim();
  return text.length > 200 ? `${text.slice(0, 199)}…` : text;
}

/** ECR image scanning (basic, or enhanced through ECR): the ECR half of the FindingsPort. */
export class EcrScanFindings {
  constructor(
    private readonly client: ECRClient,
    private readonly retry: RetryOptions = DEFAULT_RETRY,
  ) {}

  /**
   * Every page of the image's scan findings. Each page is read by the core's reader and the tables joined;
   * the verdict is the first page's `imageScanStatus`, unless a later page says the scan is not complete
   * (a rescan started while paging), which wins: fail closed. Pages of two scans (a rescan that finished
   * between two page calls) are no one scan's list, and are not joined.
   */
  async ecrScanFindings(
    image: ImageLocator,
    options: { readonly signal?: AbortSignal } = {},
  ): Promise<EcrScanReadResult> {
    const signal = options.signal;
    const tables: FindingTable[] = [];
    const seen = new Set<string>();
    let scan: ScanVerdict | undefined;
    const counts: FindingsDocument['counts'][] = [];
    let pages = 0;
    let nextToken: string | undefined;
    // The scan the pages are of: a rescan that finishes mid-listing changes it, and its pages list other
    // findings, so the joined list could meet every count while missing findings of both scans.
    let scanAt: number | undefined;
    do {
      signal?.throwIfAborted();
      const token = nextToken;
      pages++;
      let page: DescribeImageScanFindingsCommandOutput;
      try {
        page = await withRetries(
          () =>
            this.client.send(
              new DescribeImageScanFindingsCommand({
                repositoryName: image.repository,
                imageId: { imageDigest: image.digest },
                maxResults: SCAN_FINDINGS_PAGE,
                ...(image.registryId === undefined ? {} : { registryId: image.registryId }),
                ...(token === undefined ? {} : { nextToken: token }),
              }),
              sendOptions(signal),
            ),
          this.retry,
          signal,
        );
      } catch (e) {
        // Only an answer about the image as a whole: mid-listing, it would leave a partial table.
        if (pages === 1 && errorName(e) === 'ScanNotFoundException') {
          return { table: FindingTable.fromFindings([]), pages, longestChain: pages, scan: NO_SCAN_YET };
        }
        const gone = pages === 1 ? GONE.get(errorName(e)) : undefined;
        if (gone !== undefined) {
          const reason = `ECR has no scan findings to give: ${gone.what} is not found (${errorName(e)}: ${errorText(e)})`;
          const verdict: ScanVerdict = { complete: false, status: gone.status, reason };
          return { table: FindingTable.fromFindings([]), pages, longestChain: pages, scan: verdict };
        }
        throw e;
      }
      const doc = readFindingsDocument({
        repositoryName: page.repositoryName,
        imageId: page.imageId,
        imageScanStatus: page.imageScanStatus,
        // A scan that has not finished may come without findings; the reader wants the key to know the format.
        imageScanFindings: page.imageScanFindings ?? {},
      });
      // A later page without a completion time is the empty last page (below), not another scan. One with a
      // time the first page lacked cannot be shown to be of the first page's scan either (fail closed).
      const at = completedAt(page);
      if (pages === 1) scanAt = at;
      else if (at !== undefined && at !== scanAt) {
        const first =
          scanAt === undefined
            ? 'one with no completion time'
            : `one completed at ${new Date(scanAt).toISOString()}`;
        scan = {
          complete: false,
          status: 'SCAN_CHANGED_WHILE_PAGING',
          reason: `the scan changed while its findings were read (a rescan?): page ${pages} is of a scan completed at ${new Date(at).toISOString()}, page 1 of ${first}`,
        };
        // The read is given up, so its remaining pages are not worth the calls: the gate reads again.
        break;
      }
      tables.push(doc.findings);
      counts.push(doc.counts);
      // A page that says the scan finished and has no findings part at all shows nothing of it: not a clean
      // image (fail closed). One whose findings part shows nothing either (no finding, no completion time, no
      // counts) is a scan whose findings are not ready yet (ECR_FINDINGS_NOT_READY, aws/aws-sdk#289).
      const finished = doc.scan?.complete === true || doc.scan?.status === ECR_FINDINGS_NOT_READY;
      const verdict =
        finished && page.imageScanFindings === undefined ? FINDINGS_MISSING : (doc.scan ?? NO_STATUS);
      // Not ready is about the answer as a whole: after pages that showed the finished scan (the first page is
      // checked on its own), a last page with nothing more on it is the end of the list, not a scan not ready.
      const emptyLaterPage = scan?.complete === true && verdict.status === ECR_FINDINGS_NOT_READY;
      if (scan === undefined || (scan.complete && !verdict.complete && !emptyLaterPage)) scan = verdict;
      nextToken = nextPage(page.nextToken, seen, 'DescribeImageScanFindings');
    } while (nextToken !== undefined);
    const table = FindingTable.concat(tables);
    // Every page gives the whole scan's counts: a list holding fewer is not the whole scan (fail closed).
    const counted = largestCounts(counts);
    const short = scan?.complete && counted ? shortOfCounts(table, counted) : undefined;
    if (short !== undefined) {
      scan = {
        complete: false,
        status: 'FINDINGS_SHORT_OF_COUNTS',
        reason: `ECR listed fewer findings than its findingSeverityCounts (${short})`,
      };
    }
    return { table, pages, longestChain: pages, scan: scan ?? NO_STATUS };
  }
}

/**
 * Manifest media types of an image index: a list of platform images (multi-architecture, or one platform with
 * its attestations, as `docker buildx build --push` writes by default). Scanners scan the platform images,
 * never the index, so nothing is ever found or covered under its digest.
 */
const INDEX_MEDIA_TYPES: ReadonlySet<string> = new Set([
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
]);

/**
 * ECR `DescribeImages`: which digest a tag points at, and whether a digest named directly is an image ECR
 * has, and not an index.
 */
export class EcrImages implements ImagesPort {
  constructor(
    private readonly client: ECRClient,
    private readonly retry: RetryOptions = DEFAULT_RETRY,
  ) {}

  resolveTag(repository: string, tag: string, registryId: string | undefined): Promise<TagResolution> {
    return this.describe(repository, { imageTag: tag }, `${repository}:${tag}`, registryId);
  }

  checkDigest(repository: string, digest: string, registryId: string | undefined): Promise<TagResolution> {
    return this.describe(repository, { imageDigest: digest }, `${repository}@${digest}`, registryId);
  }

  private async describe(
    repository: string,
    imageId: { readonly imageTag: string } | { readonly imageDigest: string },
    named: string,
    registryId: string | undefined,
  ): Promise<TagResolution> {
    const where = registryId === undefined ? '' : ` in registry ${registryId}`;
    try {
      const out = await withRetries(
        () =>
          this.client.send(
            new DescribeImagesCommand({
              repositoryName: repository,
              imageIds: [imageId],
              ...(registryId === undefined ? {} : { registryId }),
            }),
          ),
        this.retry,
      );
      const image = out.imageDetails?.[0];
      const digest = image?.imageDigest;
      if (digest === undefined) return { missing: `ECR has no image ${named}${where}` };
      // Judged as an image, an index would read as a clean scan if coverage ever listed it, or wait out the
      // deadline as not covered with nothing saying why: refused at once, with what to name instead. A detail
      // without a media type resolves as before: only what ECR says is an index is refused.
      const mediaType = image?.imageManifestMediaType?.trim().toLowerCase();
      if (mediaType !== undefined && INDEX_MEDIA_TYPES.has(mediaType)) {
        const index =
          'imageTag' in imageId
            ? `an image index (${image?.imageManifestMediaType}) ${digest}`
            : `an image index (${image?.imageManifestMediaType})`;
        return {
          missing: `${named}${where} names ${index}: a multi-architecture image, or one pushed with attestations (docker buildx --push adds provenance by default). Scanners do not scan an index, only its platform images: name a platform image's digest in CustomData (${repository}@sha256:…; \`docker buildx imagetools inspect\` lists them)`,
        };
      }
      const pushedAt = image?.imagePushedAt;
      return pushedAt instanceof Date && !Number.isNaN(pushedAt.getTime())
        ? { digest, pushedAt: pushedAt.toISOString() }
        : { digest };
    } catch (e) {
      // Answers that will not change on a retry are the gate's to escalate with, not a fault to dead-letter:
      // the pipeline named something ECR does not have here, or Tollgate's role may not read.
      const name = errorName(e);
      if (name === 'ImageNotFoundException') return { missing: `ECR has no image ${named}${where}` };
      if (name === 'RepositoryNotFoundException')
        return { missing: `ECR has no repository ${repository}${where} in this account and region` };
      if (name === 'InvalidParameterException')
        return { missing: `ECR refuses ${named} as an image name: ${errorText(e)}` };
      if (name === 'AccessDeniedException')
        return { missing: `Tollgate may not read ${repository}${where} in ECR (AccessDeniedException)` };
      throw e;
    }
  }
}
