import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { TestContext } from 'node:test';

/** A fresh temporary directory, removed when the test ends. */
export async function tmpDir(t: TestContext, prefix = 'handoff-test-'): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  // `after` hooks run in the order they were added, so a server started in this directory may
  // still write into it (a janitor's lock) while it is removed: retry rather than fail the hook,
  // which would skip the hooks after it (the server's close) and leave the test process running.
  t.after(() => rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 }));
  return dir;
}
