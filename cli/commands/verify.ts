import type { Command } from 'commander';
import { HandoffError, type ErrorCode } from '../../protocol/errors.js';
import { AlreadyReported, emit } from '../output.js';

interface VerifyFlags {
  agent: string;
  keys?: string;
  config?: string;
  at?: string;
  json?: boolean;
}

/** `handoff verify FILE`: judges one payload file as the listener of `--agent` would. */
export function register(program: Command): void {
  program
    .command('verify')
    .description('verify one handoff payload file as the listener of --agent would')
    .argument('<file>', 'payload file (plain payload or a spool file of any state)')
    .requiredOption('--agent <name>', 'the listening agent')
    .option('--keys <dir>', 'directory of voice-handoff-<peer>.key files (default ~/.secrets)')
    .option('--config <file>', 'config file')
    .option('--at <iso8601>', 'judge expiry at this time instead of now')
    .option('--json', 'print one JSON document')
    .addHelpText('after', '\nExample:\n  handoff verify handoff/1795341600-bob-alice-8a59780bb8cd2ba0.json --agent alice --keys ~/.secrets')
    .action(async (file: string, flags: VerifyFlags) => {
      const { verifyFile } = await import('./verify-impl.js');
      const { keysDirFrom } = await import('../config.js');
      const result = await verifyFile(file, { ...flags, keys: keysDirFrom(flags) });
      emit(flags, result, (r) => (r.valid ? 'valid' : `${r.code}: ${r.message}`));
      if (!result.valid) throw new AlreadyReported(new HandoffError(result.code as ErrorCode, result.message));
    });
}
