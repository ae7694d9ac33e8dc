/**
 * Bundles the `handoff` command into `dist/bin/` (run by `npm run build`, after tsc).
 *
 * Why: a person or a voice agent waits for every `handoff` process to start. On Node 20 each ES
 * module costs its own resolve and link step, and commander, a CommonJS package, also pulls in
 * the CommonJS translator; zod is some seventy ES modules, loaded by every command that checks
 * input; undici, the listener's HTTP client (`listen`, `demo`, `doctor`; the one-shot commands
 * use node:http), is some hundred CommonJS files, all required by its entry point. A bundle of
 * our modules with those three inside starts measurably sooner than the tsc output
 * (bench/README.md has the numbers); undici lands in a chunk that only those commands load. The
 * other runtime dependencies stay outside: commands import them lazily, only when they need them,
 * and they load from node_modules as their authors ship them. `dist/cli/` (tsc's output) remains
 * what the library exports use.
 *
 * Usage: node scripts/bundle-bin.mjs [OUTDIR]   (default dist/bin; tests bundle elsewhere)
 */
import { chmodSync, readFileSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
/** Dependencies compiled into the bundle (see above). */
const BUNDLED = new Set(['commander', 'zod', 'undici']);
const outdir = path.resolve(process.argv[2] ?? path.join(root, 'dist', 'bin'));
// The directory is emptied first, so it must be one of ours: somewhere inside the repository.
if (path.relative(root, outdir).startsWith('..') || outdir === root) {
  throw new Error(`bundle-bin: the output directory must be inside ${root}, not ${outdir}`);
}

// Chunk names carry content hashes: without this, every build would leave the last one's behind.
rmSync(outdir, { recursive: true, force: true });
await build({
  absWorkingDir: root,
  entryPoints: { handoff: 'cli/main.ts' },
  outdir,
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: Object.keys(pkg.dependencies).filter((name) => !BUNDLED.has(name)),
  // commander is CommonJS and requires Node's built-ins; an ES module bundle needs a `require`.
  banner: { js: "import { createRequire as handoffCreateRequire } from 'node:module'; const require = handoffCreateRequire(import.meta.url);" },
  // Stack traces can be mapped back to the sources (node --enable-source-maps).
  sourcemap: true,
  sourcesContent: false,
  logLevel: 'warning',
});
chmodSync(path.join(outdir, 'handoff.js'), 0o755);
