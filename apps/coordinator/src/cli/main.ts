import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { WebpvmError, type ErrorCode } from '@webpvm/vm-protocol';
import packageJson from '../../package.json' with { type: 'json' };
import { DEFAULT_URL, type ClientOptions } from './api-client.ts';
import type { ResultsOptions, StatusOptions } from './jobs.ts';
import type { HostsOptions } from './hosts.ts';
import type { RunLocalOptions } from './run-local.ts';
import type { StartOptions } from './start.ts';
import type { SubmitOptions } from './submit.ts';
import type { TokenCreateOptions, TokenListOptions } from './tokens.ts';
import type { Policy, VolunteerOptions } from './volunteer.ts';
import type { GcOptions } from './gc.ts';

/** Errors in what the person typed or pointed at; anything else exits 1. */
const USAGE_ERRORS: readonly ErrorCode[] = ['E_BAD_REQUEST', 'E_BAD_PROGRAM', 'E_TOO_LARGE'];
const USAGE_EXIT = 2;
const POLICIES: Policy[] = ['idle', 'hidden', 'always'];
const SEED_HELP = "the job's seed, from which every task's ctx.random derives: the same seed gives the same numbers locally and on the grid (default 1)";

// Each command module is loaded when its command runs: `webpvm status` should not load the
// server, esbuild or Playwright.
const program = new Command('webpvm')
  .description('a parallel virtual machine made of browser tabs')
  .version(packageJson.version)
  .exitOverride()
  .showHelpAfterError('(run with --help for usage)');

program
  .command('start')
  .description('run the coordinator in the foreground (Ctrl-C stops it)')
  .option('--port <port>', 'port to listen on (env PORT, default 8080)', integer(0, 65_535))
  .option('--host <host>', 'address to listen on (env HOST, default 127.0.0.1)')
  .option('--data <dir>', 'data directory (env WEBPVM_DATA, default ./.webpvm)')
  .action(async (options: StartOptions) => (await import('./start.ts')).start(options));

withClient(program.command('submit'))
  .description('bundle a program and submit it as a job; prints the job id')
  .argument('<program>', 'the program: a .ts, .js or .mjs ES module')
  .option('--inputs <file>', 'a JSON array (.json): one root task per element; or one JSON value a line (.ndjson), sent in parts')
  .option('--main <json>', 'the input of one root task that spawns the rest')
  .option('--name <name>', 'job name (default: the file name without extension)')
  .option('--replicas <k>', 'run each task on k distinct volunteers (browser profiles)', integer(1, 16))
  .option('--quorum <q>', 'accept a result that q replicas agree on', integer(1, 16))
  .option('--adaptive', 'trust volunteers with a record of agreeing results: their results stand alone, with spot checks')
  .option('--spot-check <rate>', 'with --adaptive, the share of a trusted volunteer\'s tasks still checked by a quorum (0.1)', fraction)
  .option('--distinct-addresses', 'replicas on distinct network addresses too, not only distinct volunteers')
  .option('--tolerance <t>', "replicas' numbers agree within t (relative above 1, absolute below) instead of exactly", fraction)
  .option('--max-attempts <n>', 'attempts per task before it fails', integer(1, 100))
  .option('--timeout <ms>', 'deadline of one attempt of a task, in milliseconds', integer(100, 7 * 24 * 3600 * 1000))
  .option('--priority <p>', 'share of the hosts relative to other jobs', integer(1, 100))
  .option('--seed <n>', SEED_HELP, integer(0, 0xffffffff))
  .option('--wait', 'follow the job, then print its results JSON; exit 1 unless it ends done')
  .action(async (path: string, options: SubmitOptions) => (await import('./submit.ts')).submit(path, options));

withClient(program.command('status'))
  .description('list the jobs, or show one job')
  .argument('[job]', 'a job id')
  .option('--json', 'print the raw JSON')
  .action(async (job: string | undefined, options: StatusOptions) => (await import('./jobs.ts')).status(job, options));

withClient(program.command('results'))
  .description('print a job\'s results as {"results": [...]}, results[i] for input i')
  .argument('<job>', 'a job id')
  .option('--ndjson', 'stream one JSON line per result')
  .option('--follow', 'stream each task\'s outcome as it finishes, {cursor, index, ok, result | error} a line, until the job ends; a dropped connection resumes after the last cursor')
  .option('--after <cursor>', 'only the outcomes after this cursor (the last one read): resume an earlier read', integer(0, Number.MAX_SAFE_INTEGER))
  .action(async (job: string, options: ResultsOptions) => (await import('./jobs.ts')).results(job, options));

withClient(program.command('cancel'))
  .description('cancel a job; prints its new state')
  .argument('<job>', 'a job id')
  .action(async (job: string, options: ClientOptions) => (await import('./jobs.ts')).cancel(job, options));

const token = program.command('token').description('manage bearer tokens');
withClient(token.command('create'))
  .description('create a token; prints only the token. An admin token makes any; a submit token makes read tokens for its own jobs')
  .option('--name <name>', 'a name to recognise it by')
  .addOption(new Option('--scope <scope>', 'read: see its owner\'s jobs; submit: submit, cancel and read its own; admin: everything').choices(['read', 'submit', 'admin']))
  .option('--admin', 'the same as --scope admin')
  .option('--expires-in-days <days>', 'the token stops working after this many days', positiveNumber)
  .option('--max-jobs <n>', 'quota: unfinished jobs at once (admin only)', integer(1, 1_000_000))
  .option('--max-tasks <n>', 'quota: tasks in its unfinished jobs (admin only)', integer(1, Number.MAX_SAFE_INTEGER))
  .option('--max-bytes <n>', 'quota: bytes in one request (admin only)', integer(1024, 64 * 1024 * 1024))
  .option('--max-running <n>', 'quota: its tasks running at once (admin only)', integer(1, 1_000_000))
  .action(async (options: TokenCreateOptions) => (await import('./tokens.ts')).createToken(options));
withClient(token.command('list'))
  .description('list tokens: every one for an admin, its own owner\'s for a submit token (never their secrets)')
  .option('--json', 'print the raw JSON')
  .action(async (options: TokenListOptions) => (await import('./tokens.ts')).listTokens(options));
withClient(token.command('revoke'))
  .description('revoke a token at once: an admin any, a submit token its own owner\'s')
  .argument('<id>', 'the token\'s id (webpvm token list)')
  .action(async (id: string, options: ClientOptions) => (await import('./tokens.ts')).revokeToken(id, options));

withClient(program.command('gc'))
  .description('delete the rows of jobs that finished more than --older-than days ago, and their programs (needs an admin token)')
  .requiredOption('--older-than <days>', 'days since a job finished', integer(0, 100_000))
  .action(async (options: GcOptions) => (await import('./gc.ts')).gc(options));

withClient(program.command('hosts'))
  .description('list the volunteer hosts')
  .option('--json', 'print the raw JSON')
  .action(async (options: HostsOptions) => (await import('./hosts.ts')).hosts(options));

program
  .command('run-local')
  .description('run a program in Node worker threads, without coordinator or browser; prints {"results": [...]}')
  .argument('<program>', 'the program: a .ts, .js or .mjs ES module')
  .option('--inputs <file>', 'a JSON array (.json), or one JSON value a line (.ndjson): one root task per input')
  .option('--main <json>', 'the input of one root task that spawns the rest')
  .option('--concurrency <n>', 'worker threads (default: the number of cores)', integer(1, 1024))
  .option('--seed <n>', SEED_HELP, integer(0, 0xffffffff))
  .action(async (path: string, options: RunLocalOptions) => (await import('./run-local.ts')).runLocal(path, options));

withUrl(program.command('volunteer'))
  .description('join the coordinator with headless Chromium tabs, one host each, until Ctrl-C')
  .option('--tabs <n>', 'number of tabs', integer(1, 64), 1)
  .option('--slots <k>', 'task slots per tab (default: cores - 1)', integer(1, 64))
  .addOption(
    new Option('--policy <policy>', 'when a tab computes; a headless tab has no one to reclaim it')
      .choices(POLICIES)
      .default('always'),
  )
  .action(async (options: VolunteerOptions) => (await import('./volunteer.ts')).volunteer(options));

function withUrl(command: Command): Command {
  return command.addOption(new Option('--url <url>', 'coordinator URL').env('WEBPVM_URL').default(DEFAULT_URL));
}

function withClient(command: Command): Command {
  return withUrl(command).addOption(new Option('--token <token>', 'bearer token').env('WEBPVM_TOKEN'));
}

function fraction(value: string): number {
  const number = Number(value);
  if (value.trim() === '' || !Number.isFinite(number) || number < 0 || number > 1) throw new InvalidArgumentError('expected a number from 0 to 1');
  return number;
}

function positiveNumber(value: string): number {
  const number = Number(value);
  if (value.trim() === '' || !Number.isFinite(number) || number <= 0) throw new InvalidArgumentError('expected a number above 0');
  return number;
}

function integer(min: number, max: number): (value: string) => number {
  return (value) => {
    const number = Number(value);
    if (value.trim() === '' || !Number.isInteger(number) || number < min || number > max) {
      throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`);
    }
    return number;
  };
}

function exitCodeFor(error: unknown): number {
  if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : USAGE_EXIT;
  if (error instanceof WebpvmError) return USAGE_ERRORS.includes(error.code) ? USAGE_EXIT : 1;
  return 1;
}

function report(error: unknown): void {
  // Commander has already printed its own usage errors.
  if (error instanceof CommanderError) return;
  if (error instanceof WebpvmError) process.stderr.write(`webpvm: ${error.message} (${error.code})\n`);
  else process.stderr.write(`webpvm: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
}

// `webpvm results <job> | head` closes stdout early; that is not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});

try {
  await program.parseAsync(process.argv);
} catch (error) {
  report(error);
  // Exit now: whatever the failed command left open (a half-started server, a browser) must not hold the process.
  process.exit(exitCodeFor(error));
}
