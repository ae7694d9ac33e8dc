import type { Command } from 'commander';
import { emit } from '../output.js';

interface KeysFlags {
  peer: string;
  keys?: string;
  config?: string;
  json?: boolean;
}

/** `handoff keys gen|import|list`: pair secrets, one file per peer, mode 0600. */
export function register(program: Command): void {
  const keys = program.command('keys').description('manage pair secrets (one voice-handoff-<peer>.key file per peer)');

  keys
    .command('gen')
    .description('write a new random secret for --peer (refuses to overwrite)')
    .requiredOption('--peer <name>', 'the other agent of the pair')
    .option('--keys <dir>', 'key directory (default ~/.secrets)')
    .option('--config <file>', 'config file')
    .option('--json', 'print one JSON document')
    .addHelpText('after', '\nExample:\n  handoff keys gen --peer alice --keys ~/.secrets\n  # then copy the file to alice\'s host as voice-handoff-bob.key (same secret on both sides)')
    .action(async (flags: KeysFlags) => {
      const { generateSecret, keyFilePath, writeKeyFile } = await import('../../protocol/index.js');
      const file = keyFilePath((await import('../config.js')).keysDirFrom(flags), flags.peer);
      await writeKeyFile(file, generateSecret());
      emit(flags, { peer: flags.peer, file }, (r) => `wrote ${r.file} (mode 0600)`);
    });

  keys
    .command('import')
    .description('store a secret read from standard input for --peer (refuses to overwrite)')
    .requiredOption('--peer <name>', 'the other agent of the pair')
    .option('--keys <dir>', 'key directory (default ~/.secrets)')
    .option('--config <file>', 'config file')
    .option('--json', 'print one JSON document')
    .addHelpText('after', '\nExample:\n  ssh bob-host cat .secrets/voice-handoff-alice.key | handoff keys import --peer bob')
    .action(async (flags: KeysFlags) => {
      const { decodeKeyBytes, keyFilePath, writeKeyFile } = await import('../../protocol/index.js');
      const chunks: Buffer[] = [];
      for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
      const file = keyFilePath((await import('../config.js')).keysDirFrom(flags), flags.peer);
      await writeKeyFile(file, decodeKeyBytes(Buffer.concat(chunks), 'standard input'));
      emit(flags, { peer: flags.peer, file }, (r) => `wrote ${r.file} (mode 0600)`);
    });

  keys
    .command('list')
    .description('list peers with key files, checking each file (never prints a secret)')
    .option('--keys <dir>', 'key directory (default ~/.secrets)')
    .option('--config <file>', 'config file')
    .option('--json', 'print one JSON document')
    .addHelpText('after', '\nExample:\n  handoff keys list --keys ~/.secrets')
    .action(async (flags: Omit<KeysFlags, 'peer'>) => {
      const { listKeys } = await import('./keys-impl.js');
      const dir = (await import('../config.js')).keysDirFrom(flags);
      const rows = await listKeys(dir);
      emit(flags, { keys: rows }, (r) =>
        r.keys.length === 0
          ? `no voice-handoff-*.key files in ${dir}`
          : r.keys.map((k) => `${k.peer.padEnd(12)} ${k.ok ? `ok, ${k.secrets} secret(s)` : `${k.code}: ${k.message}`}${k.warnings.length ? ` (${k.warnings.join('; ')})` : ''}`).join('\n'),
      );
    });
}
