import type { Command } from 'commander';
import { HandoffError } from '../../protocol/errors.js';
import { AlreadyReported, emit } from '../output.js';

const MARK = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL', skip: '--  ' } as const;

/** `handoff doctor`: checks configuration, keys, hub, clock, directories and Twilio settings. */
export function register(program: Command): void {
  program
    .command('doctor')
    .description('check the configuration, key files, hub and token, clock skew, directories and Twilio settings')
    .option('--agent <name>', 'this agent')
    .option('--hub <url>', 'the hub URL')
    .option('--token-file <file>', 'hub token file')
    .option('--spool <dir>', 'local mode spool')
    .option('--keys <dir>', 'key directory')
    .option('--bootstrap-dir <dir>', 'bootstrap directory')
    .option('--state-dir <dir>', "the listener's state directory")
    .option('--online', 'also check the Twilio credentials against Twilio (one API request)')
    .option('--config <file>', 'config file')
    .option('--json', 'print one JSON document')
    .addHelpText('after', '\nExample:\n  handoff doctor --config ~/.config/handoff/alice.json')
    .action(async (flags: Record<string, unknown> & { json?: boolean }) => {
      const { doctor } = await import('./doctor-impl.js');
      const report = await doctor(flags);
      emit(flags, report, (r) =>
        [
          ...r.checks.map((c) => `${MARK[c.status]}  ${c.check.padEnd(20)} ${c.detail}${c.fix ? `\n      → ${c.fix}` : ''}`),
          '',
          r.ok ? 'everything needed is in place' : 'fix the FAIL lines above',
        ].join('\n'),
      );
      if (!report.ok) throw new AlreadyReported(new HandoffError('CONFIG', 'doctor found problems'));
    });
}
