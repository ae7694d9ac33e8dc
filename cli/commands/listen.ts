import type { Command } from 'commander';
import { Option } from 'commander';

/** `handoff listen`: the per-agent daemon (hub mode with --hub, local mode with --spool). */
export function register(program: Command): void {
  program
    .command('listen')
    .description("run this agent's listener: verify, accept, write the bootstrap file, redial the caller")
    .option('--agent <name>', 'this agent')
    .option('--hub <url>', 'hub mode: long-poll this hub (token from HANDOFF_TOKEN or --token-file)')
    .option('--token-file <file>', "file holding this agent's hub token (mode 0600)")
    .option('--spool <dir>', 'local mode: watch this shared spool')
    .option('--keys <dir>', 'directory of voice-handoff-<peer>.key files')
    .option('--bootstrap-dir <dir>', "where the voice server reads bootstrap files (gptme-voice: <state dir>/handoffs)")
    .option('--state-dir <dir>', "the listener's own journal (default ~/.local/state/handoff/<agent>)")
    .addOption(new Option('--dialer <kind>', 'twilio, or dry-run to print what would be sent').choices(['twilio', 'dry-run']))
    .option('--from-number <e164>', "this agent's Twilio number")
    .option('--target-url <url>', "the voice server: wss://…/twilio (stream) or https://… (twiml-url)")
    .option('--log-level <level>', 'pino log level; logs go to stderr (default info)')
    .option('--metrics-listen <host:port>', 'serve Prometheus metrics at http://HOST:PORT/metrics (e.g. 127.0.0.1:9464)')
    .option('--config <file>', 'config file (default ./handoff.config.json, then ~/.config/handoff/config.json)')
    .option('--json', 'print one JSON line per event')
    .addHelpText(
      'after',
      '\nExample:\n  HANDOFF_TOKEN=$(cat ~/.secrets/hub-token) TWILIO_AUTH_TOKEN=… handoff listen --config ~/.config/handoff/alice.json\n  handoff listen --agent alice --spool /var/lib/handoff --keys ~/.secrets --bootstrap-dir ~/.local/share/gptme-voice/handoffs --dialer dry-run',
    )
    .action(async (flags: Record<string, unknown>) => {
      const { listen } = await import('./listen-impl.js');
      await listen(flags);
    });
}
