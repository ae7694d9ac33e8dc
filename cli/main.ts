#!/usr/bin/env node
/**
 * The `handoff` command: the composition root. Only this folder reads argv, the environment and
 * configuration files, and only this file sets the exit code.
 *
 * Start-up must stay fast: command modules are small and load their heavy dependencies (hono,
 * twilio, chokidar) inside their action with a dynamic `import()`.
 */
import { CommanderError } from 'commander';
import { ERROR_CODES, HandoffError } from '../protocol/errors.js';
import { reportError } from './output.js';
import { buildProgram } from './program.js';

async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  const wantsJson = argv.includes('--json');
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version exit through here with code 0; usage errors are already printed.
      if (err.exitCode === 0 || err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return 0;
      // No command at all (or a group such as `keys` alone): the help was printed on stderr; a
      // usage error, without a second message about it.
      if (err.code === 'commander.help') return ERROR_CODES.USAGE.exit;
      const hint = wantsJson ? '' : ' (run with --help for usage)';
      return reportError(new HandoffError('USAGE', `${err.message.replace(/^error: /, '')}${hint}`), { json: wantsJson });
    }
    return reportError(err, { json: wantsJson });
  }
}

process.exitCode = await main(process.argv);
