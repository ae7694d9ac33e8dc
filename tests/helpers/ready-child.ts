import { spawn, type ChildProcess } from 'node:child_process';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';

/**
 * Runs the helper script `tests/helpers/<script>` (TypeScript, through tsx) with `args` and
 * resolves once it prints `ready` on stdout; the child is killed (SIGKILL) when the test ends.
 */
export async function readyChild(t: TestContext, script: string, args: string[], ready: string): Promise<ChildProcess> {
  const file = fileURLToPath(new URL(`./${script}`, import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', file, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => child.kill('SIGKILL'));
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (d: Buffer) => d.toString().includes(ready) && resolve());
    child.on('exit', (code, signal) => reject(new Error(`${script} exited (${code ?? signal}) before it was ready`)));
  });
  return child;
}
