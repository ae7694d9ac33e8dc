import type { Command } from 'commander';
import { HandoffError } from '../../protocol/errors.js';
import { AlreadyReported, emit } from '../output.js';

/** `handoff audit verify` and `handoff spool recover`: maintenance of a spool directory. */
export function register(program: Command): void {
  program
    .command('audit')
    .description("the spool's hash-chained audit log")
    .command('verify')
    .description('check the audit log; names the first edited, deleted or reordered line')
    .requiredOption('--spool <dir>', 'spool directory')
    .option('--json', 'print one JSON document')
    .addHelpText('after', '\nExample:\n  handoff audit verify --spool /var/lib/handoff')
    .action(async (flags: { spool: string; json?: boolean }) => {
      const path = await import('node:path');
      const { verifyAudit } = await import('../../spool/index.js');
      const r = await verifyAudit(path.join(path.resolve(flags.spool), 'events'));
      emit(flags, r, (x) =>
        x.ok
          ? `ok: ${x.lines} lines, chain intact (last line hash ${x.lastHash})`
          : `BROKEN at ${x.firstBad?.file} line ${x.firstBad?.line}: ${x.firstBad?.problem}`,
      );
      if (!r.ok) throw new AlreadyReported(new HandoffError('TAMPERED', `audit log broken at ${r.firstBad?.file}:${r.firstBad?.line}`));
    });

  program
    .command('spool')
    .description('spool maintenance')
    .command('recover')
    .description('recover a spool after a crash; --full also finishes interrupted moves into archive/ and rejected/')
    .requiredOption('--spool <dir>', 'spool directory')
    .option('--full', 'scan archive/ and rejected/ too (time grows with their size)')
    .option('--json', 'print one JSON document')
    .addHelpText('after', '\nExample:\n  handoff spool recover --spool /var/lib/handoff --full')
    .action(async (flags: { spool: string; full?: boolean; json?: boolean }) => {
      const path = await import('node:path');
      const { openSpool } = await import('../../spool/index.js');
      const spool = await openSpool({ root: path.resolve(flags.spool), fullRecovery: Boolean(flags.full) });
      try {
        const report = await spool.recover({ full: Boolean(flags.full) });
        emit(flags, report, (r) => Object.entries(r).map(([k, v]) => `${k.padEnd(20)} ${v}`).join('\n'));
      } finally {
        await spool.close();
      }
    });
}
