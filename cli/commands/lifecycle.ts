import { Option, type Command } from 'commander';
import { HandoffError } from '../../protocol/errors.js';
import { AlreadyReported, emit, stringifyWithRaw } from '../output.js';

/** Options every lifecycle command shares: where the handoffs are, and how to print. */
function withTarget(cmd: Command): Command {
  return cmd
    .option('--spool <dir>', 'local mode: the shared spool directory')
    .option('--hub <url>', 'hub mode: the hub URL (token from HANDOFF_TOKEN or --token-file)')
    .option('--token-file <file>', 'file holding this agent\'s hub token (mode 0600)')
    .option('--config <file>', 'config file (default ./handoff.config.json, then ~/.config/handoff/config.json)')
    .option('--json', 'print JSON (one document, or JSON lines for streams)');
}

type Flags = Record<string, unknown> & { json?: boolean; config?: string };

async function impl() {
  return import('./lifecycle-impl.js');
}

/** `handoff start|list|show|poll|accept|complete|reject`: the handoff lifecycle, local or through a hub. */
export function register(program: Command): void {
  withTarget(
    program
      .command('start')
      .description('sign a handoff for --to and submit it (to the hub, or into the local spool)')
      .option('--agent <name>', 'this agent (the initiator)')
      .requiredOption('--to <name>', 'the agent to hand the caller to')
      .requiredOption('--caller <number>', "the caller's number (only its hash is sent unless --send-number)")
      .requiredOption('--reason <text>', 'why, e.g. scheduling_capability')
      .option('--transcript <file>', 'transcript JSON ([{role,text,ts?}]), or - for standard input')
      .option('--resume-hint <text>', 'the sentence the target should open with')
      .option('--summary <text>', 'a short summary of the conversation so far')
      .option('--ttl <sec>', 'seconds until the handoff expires (default 15)')
      .option('--keys <dir>', 'directory of voice-handoff-<peer>.key files')
      .option('--send-number', 'include the caller number as callback_number')
      .option('--call-sid <sid>', 'the original call, for correlation')
      .addOption(new Option('--channel <channel>', 'how the target continues').choices(['voice', 'sms', 'whatsapp']))
      .addOption(new Option('--priority <p>', 'priority').choices(['low', 'normal', 'high', 'urgent']))
      .option('--hop <n>', 'handoffs so far in this conversation')
      .option('--wait', 'block until the handoff is accepted, rejected or expired, and say which'),
  )
    .addHelpText('after', '\nExample:\n  handoff start --hub https://hub.example.com --agent bob --to alice \\\n    --caller +15551234567 --reason scheduling_capability --transcript call.json \\\n    --resume-hint "Bob passed me your standup question — what cadence?" --wait')
    .action(async (flags: Flags) => {
      const r = await (await impl()).start(flags);
      emit(flags, r, (x) => (x.outcome ? `${x.handoff_id} ${x.status} → ${x.outcome.state}${x.outcome.detail ? ` (${x.outcome.detail})` : ''}` : `${x.handoff_id} ${x.status}`));
      if (r.outcome && r.outcome.state !== 'claimed' && r.outcome.state !== 'archived') {
        throw new AlreadyReported(new HandoffError(r.outcome.detail === 'expired' ? 'EXPIRED' : 'INVALID_STATE', `handoff ${r.handoff_id} was ${r.outcome.state}`));
      }
    });

  withTarget(
    program
      .command('list')
      .description('list handoffs in one state of a local spool')
      .addOption(new Option('--state <state>', 'state').choices(['pending', 'claimed', 'archived', 'rejected']).default('pending'))
      .option('--agent <name>', 'only pending handoffs for this target'),
  )
    .addHelpText('after', '\nExample:\n  handoff list --spool /var/lib/handoff --state rejected --json')
    .action(async (flags: Flags) => {
      const rows = await (await impl()).list(flags);
      emit(flags, { handoffs: rows }, (r) =>
        r.handoffs.length === 0 ? 'no handoffs' : r.handoffs.map((h) => `${h.handoff_id}  ${h.state}  ${h.from_agent} → ${h.to_agent}  ${h.detail}`).join('\n'),
      );
    });

  withTarget(
    program
      .command('show')
      .description('show one handoff: its state and the relay facts (add --payload for the payload)')
      .argument('<id>', 'handoff id')
      .option('--payload', 'also print the signed payload (contains the transcript)')
      .option('--agent <name>', 'this agent (hub mode)'),
  )
    .addHelpText('after', '\nExample:\n  handoff show 1795341600-bob-alice-8a59780bb8cd2ba0 --spool /var/lib/handoff')
    .action(async (id: string, flags: Flags) => {
      const r = await (await impl()).show(id, flags);
      emit(flags, r, (x) => Object.entries(x).map(([k, v]) => `${k.padEnd(20)} ${typeof v === 'string' ? v : stringifyWithRaw(v)}`).join('\n'));
    });

  withTarget(
    program
      .command('poll')
      .description('wait for pending handoffs addressed to --agent and print them (JSON lines with --json)')
      .option('--agent <name>', 'this agent (the target)')
      .option('--wait <sec>', 'long-poll wait, at most 30 s (default 25)'),
  )
    .addHelpText('after', '\nExample:\n  HANDOFF_TOKEN=$(cat ~/.secrets/hub-token) handoff poll --hub https://hub.example.com --agent alice --wait 20 --json')
    .action(async (flags: Flags) => {
      const items = await (await impl()).poll(flags);
      if (flags.json) for (const item of items) process.stdout.write(`${item}\n`);
      else process.stdout.write(items.length === 0 ? 'no pending handoffs\n' : `${items.map((t) => (JSON.parse(t) as { handoff_id: string }).handoff_id).join('\n')}\n`);
    });

  withTarget(
    program
      .command('accept')
      .description('claim a pending handoff for --agent; prints the claim token needed to complete it')
      .argument('<id>', 'handoff id')
      .option('--agent <name>', 'this agent (the target)'),
  )
    .addHelpText('after', '\nExample:\n  export HANDOFF_CLAIM_TOKEN=$(handoff accept 1795341600-bob-alice-8a59780bb8cd2ba0 --spool ./spool --agent alice --json | jq -r .claim_token)')
    .action(async (id: string, flags: Flags) => {
      const r = await (await impl()).accept(id, flags);
      emit(flags, r, (x) => `${x.handoff_id} claimed until ${x.lease_until}\nclaim token: ${x.claim_token}`);
    });

  withTarget(
    program
      .command('complete')
      .description('complete a claimed handoff (claim token from HANDOFF_CLAIM_TOKEN or the listener\'s state dir)')
      .argument('<id>', 'handoff id')
      .requiredOption('--outcome <outcome>', 'e.g. resolved, connected, voicemail')
      .option('--transcript <file>', 'final transcript JSON, or - for standard input')
      .option('--notes <text>', 'free notes')
      .option('--state-dir <dir>', "the listener's state dir, to find the claim token")
      .option('--agent <name>', 'this agent (the claimer)'),
  )
    .addHelpText('after', '\nExample:\n  handoff complete 1795341600-bob-alice-8a59780bb8cd2ba0 --outcome resolved --transcript final.json --hub https://hub.example.com')
    .action(async (id: string, flags: Flags) => {
      const r = await (await impl()).complete(id, flags);
      emit(flags, r, (x) => `${x.handoff_id} ${x.state}${x.outcome ? ` (${x.outcome})` : ''}`);
    });

  withTarget(
    program
      .command('reject')
      .description('reject a pending or claimed handoff with a reason')
      .argument('<id>', 'handoff id')
      .requiredOption('--reason <reason>', 'e.g. busy, not_my_scope')
      .option('--state-dir <dir>', "the listener's state dir, to find the claim token of a claimed one")
      .option('--agent <name>', 'this agent (the target)'),
  )
    .addHelpText('after', '\nExample:\n  handoff reject 1795341600-bob-alice-8a59780bb8cd2ba0 --reason not_my_scope --spool ./spool --agent alice')
    .action(async (id: string, flags: Flags) => {
      const r = await (await impl()).reject(id, flags);
      emit(flags, r, (x) => `${x.handoff_id} ${x.state}${x.reason ? ` (${x.reason})` : ''}`);
    });
}
