import type { ScanStatus, SeverityCounts } from './model.js';

/**
 * Two statuses of one image, registry and repository with the same time (scan events carry whole seconds), so neither
 * is known to be the newer: the stored one is kept, with each severity's count the higher of the two. The
 * counts are what a findings read must reach to settle; the lower of two was a read that could settle on
 * findings not yet listed.
 */
export function tiedScan(stored: ScanStatus, incoming: ScanStatus): ScanStatus {
  // Counts of two registries' repositories are two images' counts: merged, one's would stand for the other's.
  if (
    stored.registryId !== incoming.registryId ||
    stored.repository !== incoming.repository ||
    stored.digest !== incoming.digest
  ) {
    throw new Error(
      `tiedScan: expected two statuses of one image; got ${stored.registryId}/${stored.repository}@${stored.digest} and ${incoming.registryId}/${incoming.repository}@${incoming.digest}`,
    );
  }
  if (stored.counts === undefined || incoming.counts === undefined) {
    return stored.counts === undefined && incoming.counts !== undefined
      ? { ...stored, counts: incoming.counts }
      : stored;
  }
  const counts: Partial<Record<keyof SeverityCounts, number>> = { ...stored.counts };
  for (const [key, value] of Object.entries(incoming.counts) as [keyof SeverityCounts, number][]) {
    counts[key] = Math.max(counts[key] ?? 0, value);
  }
  return { ...stored, counts };
}
