// Builds the `tollgate` command into dist/ so the package's bin runs on plain Node, without a
// TypeScript loader: `npm ci` (prepare), a global install and `npm link` all get a working command.
import { rmSync } from 'node:fs';
import { build } from 'esbuild';

// Chunk names carry a hash: a fresh folder, so no chunk of an earlier build is left beside the new ones.
rmSync('dist', { recursive: true, force: true });

await build({
  entryPoints: { tollgate: 'cli/main.ts' },
  outdir: 'dist',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  // The commands' modules are imported when they run (cli/main.ts): each becomes a chunk of its own, so
  // loading the CLI does not load the AWS SDK, the local store or the policy engine it has no use for yet.
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  sourcemap: true,
  logLevel: 'warning',
});
