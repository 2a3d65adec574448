#!/usr/bin/env node
// The published entry point: the CLI itself is built into dist/ by `npm run build` (run by `npm ci`).
import '../dist/tollgate.js';
