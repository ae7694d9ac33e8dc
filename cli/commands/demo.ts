import type { Command } from 'commander';
import { emit } from '../output.js';

/** `handoff demo`: a complete, real handoff on this machine, with a timeline. */
export function register(program: Command): void {
  program
    .command('demo')
    .description('run one complete handoff on this machine (hub, two agents, dry-run dialer) and print a timeline')
    .option('--keep', 'keep the temporary directory to inspect the spool files')
    .option('--json', 'print one JSON document instead of the timeline')
    .addHelpText('after', '\nExample:\n  handoff demo --keep')
    .action(async (flags: { keep?: boolean; json?: boolean }) => {
      const { runDemo } = await import('./demo-impl.js');
      const result = await runDemo({ keep: flags.keep, write: flags.json ? undefined : (line) => process.stdout.write(`${line}\n`) });
      emit(flags, result, () => '');
    });
}
