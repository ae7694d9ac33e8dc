import type { Command } from 'commander';
import { HandoffError } from '../../protocol/errors.js';
import { AlreadyReported, emit } from '../output.js';

/** `handoff audit verify`, `handoff spool recover` and `handoff spool purge`: maintenance of a spool directory. */
export function register(program: Command): void {
  program
    .command('audit')
    .description("the spool's hash-chained audit log")
    .command('verify')
    .description('check the audit log; names the first edited, deleted or reordered line')
    .requiredOption('--spool <dir>', 'spool directory')
    .option('--anchor <hash>', 'the last line hash of an earlier verify, kept elsewhere: fail if lines were cut off since')
    .option('--json', 'print one JSON document')
    .addHelpText('after', '\nExamples:\n  handoff audit verify --spool /var/lib/handoff\n  handoff audit verify --spool /var/lib/handoff --anchor "$(cat /mnt/elsewhere/audit-anchor)"')
    .action(async (flags: { spool: string; anchor?: string; json?: boolean }) => {
      const path = await import('node:path');
      const { verifyAudit } = await import('../../spool/index.js');
      const r = await verifyAudit(path.join(path.resolve(flags.spool), 'events'), { anchor: flags.anchor });
      emit(flags, r, (x) =>
        x.ok
          ? `ok: ${x.lines} lines, chain intact${x.anchorSeq !== undefined ? `, anchor found (seq ${x.anchorSeq})` : ''} (last line hash ${x.lastHash})`
          : `BROKEN at ${x.firstBad?.file} line ${x.firstBad?.line}: ${x.firstBad?.problem}`,
      );
      if (!r.ok) throw new AlreadyReported(new HandoffError('TAMPERED', `audit log broken at ${r.firstBad?.file}:${r.firstBad?.line}`));
    });

  const spool = program.command('spool').description('spool maintenance');
  spool
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

  spool
    .command('purge')
    .description('delete finished handoffs (archive/, rejected/) older than the retention; each deletion goes to the audit log')
    .requiredOption('--spool <dir>', 'spool directory (of local mode, or of a hub that is stopped: a running hub purges itself)')
    .option('--retention-days <n>', 'keep this many days (default hub_server.retention_days of the config file)')
    .option('--dry-run', 'count what would be deleted; change nothing (no recovery either; works beside a running hub)')
    .option('--config <file>', 'config file (default ./handoff.config.json, then ~/.config/handoff/config.json)')
    .option('--json', 'print one JSON document')
    .addHelpText('after', '\nExample:\n  handoff spool purge --spool /var/lib/handoff --retention-days 30 --dry-run')
    .action(async (flags: { spool: string; retentionDays?: string; dryRun?: boolean; config?: string; json?: boolean }) => {
      const path = await import('node:path');
      const { openSpool } = await import('../../spool/index.js');
      const { required, resolveConfig, retentionMsOf } = await import('../config.js');
      const cfg = resolveConfig({ flags: { retentionDays: flags.retentionDays }, env: process.env, cwd: process.cwd(), configFile: flags.config });
      required(cfg, 'retentionDays');
      const retentionMs = retentionMsOf(cfg.config) as number;
      const root = path.resolve(flags.spool);
      // A dry run only reads: no recovery (which deletes and moves files), no owner record, no
      // directories created, so it may also look at the spool of a running hub.
      const opened = await openSpool({ root, readOnly: Boolean(flags.dryRun) });
      try {
        const result = await opened.purge({ beforeMs: Date.now() - retentionMs, dryRun: Boolean(flags.dryRun) });
        emit(flags, { ...result, dryRun: Boolean(flags.dryRun) }, (r) =>
          [
            `${r.dryRun ? 'would delete' : 'deleted'} ${r.archived} archived, ${r.rejected} rejected, ${r.dropped} dropped (${r.bytes} bytes)`,
            ...(r.keptUnexpired > 0 ? [`kept ${r.keptUnexpired} old enough but whose payload expires later`] : []),
            ...(r.keptUnreadable > 0 ? [`kept ${r.keptUnreadable} unreadable file(s): look at them`] : []),
          ].join('\n'),
        );
      } finally {
        await opened.close();
      }
    });
}
