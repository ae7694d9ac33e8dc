/**
 * The `handoff` program: every command registered, no side effects. `main.ts` runs it; tests and
 * the README check read it.
 */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { registerCommands } from './commands/index.js';

function packageVersion(): string {
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      return (JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { version: string }).version;
    } catch {
      // try the next location: sources run from cli/, the build from dist/cli/
    }
  }
  return '0.0.0';
}

/** Builds the commander program with every command. */
export function buildProgram(): Command {
  const program = new Command('handoff')
    .description('Hand a live phone conversation from one AI voice agent to another.')
    .version(packageVersion(), '-V, --version')
    // Usage errors are printed by reportError in the same format as every other error.
    .configureOutput({ outputError: () => undefined })
    .exitOverride();
  registerCommands(program);
  return program;
}
