import type { Command } from 'commander';
import { emit } from '../output.js';

export interface HubServeFlags {
  spool?: string;
  host?: string;
  port?: string;
  config?: string;
  bodyLimit?: string;
  maxPending?: string;
  maxParked?: string;
  sweepInterval?: string;
  retentionDays?: string;
  logLevel?: string;
  json?: boolean;
}

interface HubConfigFlags {
  config?: string;
  json?: boolean;
}

/** `handoff hub serve|add-agent|remove-agent`: the HTTP relay and its agents' tokens. */
export function register(program: Command): void {
  const hub = program.command('hub').description('run the HTTP relay between agents on different hosts, and manage its agents');

  hub
    .command('serve')
    .description('serve the hub API until SIGINT/SIGTERM (prints the URL when ready)')
    .option('--spool <dir>', 'spool directory (HANDOFF_SPOOL; default ~/.handoff/spool)')
    .option('--host <addr>', 'listen address (default 127.0.0.1)')
    .option('--port <n>', 'listen port, 0 picks a free one (default 8787)')
    .option('--config <file>', 'hub config file with the agents (HANDOFF_HUB_CONFIG; default ~/.handoff/hub.json)')
    .option('--body-limit <bytes>', 'largest accepted request body (default 1 MiB)')
    .option('--max-pending <n>', 'pending handoffs allowed per target (default 100)')
    .option('--max-parked <n>', 'long-polls and watches one agent may keep parked (default 32)')
    .option('--sweep-interval <ms>', 'period of the janitor sweep (default 1000)')
    .option('--retention-days <n>', 'delete finished handoffs (archive/, rejected/) older than this, hourly (default: keep forever)')
    .option('--log-level <level>', 'pino log level; logs go to stderr (default info)')
    .option('--json', 'print the URL as one JSON line')
    .addHelpText('after', '\nExample:\n  handoff hub add-agent alice && handoff hub add-agent bob\n  handoff hub serve --host 0.0.0.0 --port 8787 --spool /var/lib/handoff/spool')
    .action(async (flags: HubServeFlags) => {
      const { serveHub } = await import('./hub-impl.js');
      await serveHub(flags, (url) => emit(flags, { url }, (r) => `listening on ${r.url}`));
    });

  hub
    .command('add-agent')
    .description('register an agent (or give it a new token); prints the token once, stores only its SHA-256')
    .argument('<name>', 'agent name, [a-z][a-z0-9_-]{0,31}')
    .option('--config <file>', 'hub config file (env HANDOFF_HUB_CONFIG; default ~/.handoff/hub.json)')
    .option('--json', 'print one JSON document')
    .addHelpText('after', '\nExample:\n  handoff hub add-agent alice > alice.token   # give alice.token to alice; it is not stored')
    .action(async (name: string, flags: HubConfigFlags) => {
      const { addAgent } = await import('../../hub/index.js');
      const { hubConfigFile } = await import('./hub-impl.js');
      const { file } = hubConfigFile(flags.config);
      const token = await addAgent(file, name);
      if (!flags.json) process.stderr.write(`token for ${name} (shown once; the hub keeps only its hash in ${file}):\n`);
      emit(flags, { agent: name, config: file, token }, (r) => r.token);
    });

  hub
    .command('remove-agent')
    .description('unregister an agent; its token stops working within a second on a running hub')
    .argument('<name>', 'agent name')
    .option('--config <file>', 'hub config file (env HANDOFF_HUB_CONFIG; default ~/.handoff/hub.json)')
    .option('--json', 'print one JSON document')
    .addHelpText('after', '\nExample:\n  handoff hub remove-agent gordon')
    .action(async (name: string, flags: HubConfigFlags) => {
      const { removeAgent } = await import('../../hub/index.js');
      const { HandoffError } = await import('../../protocol/index.js');
      const { hubConfigFile } = await import('./hub-impl.js');
      const { file } = hubConfigFile(flags.config);
      if (!(await removeAgent(file, name))) throw new HandoffError('NOT_FOUND', `no agent ${name} in ${file}`);
      emit(flags, { agent: name, config: file, removed: true }, (r) => `removed ${r.agent}`);
    });
}
