/**
 * Runs `handoff decide` in a child process the way cli/main.ts runs every command (usage errors
 * as USAGE, exit status from the error code), without depending on the command list in
 * cli/commands/index.ts.
 */
import { Command, CommanderError } from 'commander';
import { register } from '../../cli/commands/decide.js';
import { reportError } from '../../cli/output.js';
import { HandoffError } from '../../protocol/errors.js';

const program = new Command('handoff').configureOutput({ outputError: () => undefined }).exitOverride();
register(program);
const json = process.argv.includes('--json');
try {
  await program.parseAsync(process.argv);
} catch (err) {
  process.exitCode =
    err instanceof CommanderError
      ? reportError(new HandoffError('USAGE', err.message.replace(/^error: /, '')), { json })
      : reportError(err, { json });
}
