// Preloaded into a child process (node --import): at exit, prints which heavy packages were loaded.
// CommonJS packages imported from ESM still pass through the CommonJS loader and its cache.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
process.on('exit', () => {
  const heavy = ['twilio', 'hono', '@hono', 'chokidar', 'pino', 'prom-client', 'undici', 'zod'];
  const loaded = new Set();
  for (const file of Object.keys(require.cache)) {
    for (const name of heavy) if (file.includes(`/node_modules/${name}/`)) loaded.add(name);
  }
  process.stderr.write(`\nLOADED ${JSON.stringify([...loaded].sort())}\n`);
});
