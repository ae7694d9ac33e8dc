import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CLI_ENTRY = fileURLToPath(new URL('../../cli/main.ts', import.meta.url));
/** tsx's loader by absolute URL, so a child process works from any working directory. */
export const TSX_LOADER = import.meta.resolve('tsx');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `handoff ARGS` in a real child process: from the sources, or from the bin `entry` names;
 * `nodeArgs` go to node before the entry.
 */
export function runCli(args: string[], opts: { input?: string | Uint8Array; env?: NodeJS.ProcessEnv; cwd?: string; entry?: string; nodeArgs?: string[] } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const entry = opts.entry === undefined ? ['--import', TSX_LOADER, CLI_ENTRY] : [opts.entry];
    const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), ...entry, ...args], {
      cwd: opts.cwd ?? REPO_ROOT,
      env: { ...process.env, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(opts.input ?? '');
  });
}
