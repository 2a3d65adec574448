import {
  type CoverageFilterCriteria,
  type CoveredResource,
  type FilterCriteria,
  type Inspector2Client,
  type Severity as InspectorSeverity,
  ListCoverageCommand,
  ListFindingsCommand,
} from '@aws-sdk/client-inspector2';
import { readFindingsDocument } from '../../shared/findings/readers.js';
import { FindingTable } from '../../shared/findings/table.js';
import { partitionOf } from '../../shared/gate/events.js';
import type { CoverageView, FindingsReadResult, ImageLocator } from '../../shared/gate/ports.js';
import { DEFAULT_RETRY, everyPage, nextPage, type RetryOptions, sendOptions, withRetries } from './retry.js';

/**
 * One chain of pages per value of the API model's `Severity` enum. Reading the chains side by side makes
 * the critical path the longest chain instead of all pages one after another. The chains must cover every
 * severity the API can return, or findings would go unread: a test holds this list to the SDK's enum and to
 * the API model.
 */
export const SEVERITY_CHAINS = [
  'CRITICAL',
  'HIGH',
  'MEDIUM',
  'LOW',
  'INFORMATIONAL',
  'UNTRIAGED',
] as const satisfies readonly InspectorSeverity[];

/** `ListFindingsMaxResults` in the API model. */
const FINDINGS_PAGE = 100;
/** `ListCoverageMaxResults` in the API model. */
const COVERAGE_PAGE = 200;
/** Pages of a repository's coverage read for one image, at most: 5,000 images. */
export const COVERAGE_PAGES_MAX = 25;

interface Chain {
  readonly tables: FindingTable[];
  readonly pages: number;
}

/** Amazon Inspector (enhanced scanning): the Inspector half of the FindingsPort. */
export class InspectorFindings {
  constructor(
    private readonly client: Inspector2Client,
    private readonly retry: RetryOptions = DEFAULT_RETRY,
  ) {}

  /**
   * An image's coverage. Its resource id is `arn:<partition>:ecr:<region>:<account>:repository/<name>/<digest>`
   * (as its findings' resources name it): when the registry and region are known it is asked for exactly, one
   * request. Otherwise the repository's images are listed (the digest is matched here) up to
   * COVERAGE_PAGES_MAX pages: a repository of more images than that is not read whole for one
   * gate. An image not found, or not found in those pages, reads as not covered yet (pending): the gate waits,
   * and its deadline decides (fail closed). The gate names the registry whenever it can, so the exact lookup
   * is the usual one.
   */
  async coverage(image: ImageLocator): Promise<CoverageView | undefined> {
    const filterCriteria: CoverageFilterCriteria = {
      ecrRepositoryName: [{ comparison: 'EQUALS', value: image.repository }],
      resourceType: [{ comparison: 'EQUALS', value: 'AWS_ECR_CONTAINER_IMAGE' }],
      ...(image.registryId === undefined
        ? {}
        : { accountId: [{ comparison: 'EQUALS' as const, value: image.registryId }] }),
    };
    const exact = await this.resourceIdOf(image);
    // Asked for exactly, an image not found is not covered (yet): listing the repository as well would find
    // nothing more, at up to COVERAGE_PAGES_MAX calls per waiting gate per sweep, for the whole wait of an
    // image Inspector does not scan.
    if (exact !== undefined) {
      return this.firstCovered(
        { ...filterCriteria, resourceId: [{ comparison: 'EQUALS', value: exact }] },
        image,
      );
    }
    return this.firstCovered(filterCriteria, image);
  }

  private async firstCovered(
    filterCriteria: CoverageFilterCriteria,
    image: ImageLocator,
  ): Promise<CoverageView | undefined> {
    const pages = everyPage('ListCoverage', this.retry, (nextToken) =>
      this.client.send(
        new ListCoverageCommand({
          filterCriteria,
          maxResults: COVERAGE_PAGE,
          ...(nextToken === undefined ? {} : { nextToken }),
        }),
      ),
    );
    let read = 0;
    for await (const page of pages) {
      const found = (page.coveredResources ?? []).find((r) => isImage(r, image));
      if (found !== undefined) return coverageView(found);
      if (++read >= COVERAGE_PAGES_MAX) break;
    }
    return undefined;
  }

  /** The image's resource id, when its registry and the client's region say it; else undefined. */
  private async resourceIdOf(image: ImageLocator): Promise<string | undefined> {
    if (image.registryId === undefined) return undefined;
    let region: string | undefined;
    try {
      region = await this.client.config.region();
    } catch {
      return undefined;
    }
    if (!region) return undefined;
    return `arn:${partitionOf(region)}:ecr:${region}:${image.registryId}:repository/${image.repository}/${image.digest}`;
  }

  /**
   * Every finding of the image, read as one chain of pages per severity, all chains at once. A page that
   * fails (after its retries) fails the read and stops the other chains: a partial table could approve.
   */
  async inspectorFindings(
    image: ImageLocator,
    options: { readonly signal?: AbortSignal } = {},
  ): Promise<FindingsReadResult> {
    const outer = options.signal;
    outer?.throwIfAborted();
    const stop = new AbortController();
    const onAbort = () => stop.abort(outer?.reason);
    outer?.addEventListener('abort', onAbort, { once: true });
    try {
      const chains = await Promise.all(
        SEVERITY_CHAINS.map((severity) =>
          this.chain(image, severity, stop.signal).catch((e: unknown) => {
            stop.abort(e);
            throw e;
          }),
        ),
      );
      return {
        table: FindingTable.concat(chains.flatMap((c) => c.tables)),
        pages: chains.reduce((n, c) => n + c.pages, 0),
        longestChain: Math.max(...chains.map((c) => c.pages)),
      };
    } finally {
      outer?.removeEventListener('abort', onAbort);
      // Whatever happened, no chain keeps requesting pages for a read that is over.
      stop.abort();
    }
  }

  private async chain(image: ImageLocator, severity: InspectorSeverity, signal: AbortSignal): Promise<Chain> {
    const filterCriteria: FilterCriteria = {
      ecrImageHash: [{ comparison: 'EQUALS', value: image.digest }],
      ecrImageRepositoryName: [{ comparison: 'EQUALS', value: image.repository }],
      severity: [{ comparison: 'EQUALS', value: severity }],
      // In a delegated administrator's account Inspector lists every member's images: a repository of the same
      // name in another account is another image, as coverage already reads it (accountId).
      ...(image.registryId === undefined
        ? {}
        : { ecrImageRegistry: [{ comparison: 'EQUALS' as const, value: image.registryId }] }),
    };
    const tables: FindingTable[] = [];
    const seen = new Set<string>();
    let pages = 0;
    let nextToken: string | undefined;
    do {
      signal.throwIfAborted();
      const token = nextToken;
      pages++;
      const page = await withRetries(
        () =>
          this.client.send(
            new ListFindingsCommand({
              filterCriteria,
              maxResults: FINDINGS_PAGE,
              ...(token === undefined ? {} : { nextToken: token }),
            }),
            sendOptions(signal),
          ),
        this.retry,
        signal,
      );
      // An empty page may come without its list; the reader wants one to recognise the format.
      tables.push(readFindingsDocument(page.findings === undefined ? { findings: [] } : page).findings);
      nextToken = nextPage(page.nextToken, seen, 'ListFindings');
    } while (nextToken !== undefined);
    return { tables, pages };
  }
}

function isImage(resource: CoveredResource, image: ImageLocator): boolean {
  if (image.registryId !== undefined && resource.accountId !== image.registryId) return false;
  return resource.resourceId?.endsWith(`/${image.digest}`) === true;
}

function coverageView(resource: CoveredResource): CoverageView {
  // Whether the image was ever scanned: the reason alone does not say (coverageState). A time that is no
  // time reads as never scanned (fail closed).
  const at = resource.lastScannedAt;
  return {
    statusCode: resource.scanStatus?.statusCode ?? 'UNKNOWN',
    reason: resource.scanStatus?.reason ?? 'UNKNOWN',
    lastScannedAt: at instanceof Date && !Number.isNaN(at.getTime()) ? at.toISOString() : undefined,
  };
}
