import { WebpvmError } from '@webpvm/vm-protocol';
import { loadConfig, startCoordinator } from '../coordinator.ts';
import { say } from './output.ts';
import { untilStopSignal } from './signals.ts';

/** A stop that takes longer than this is a fault: the process exits with status 1 instead of hanging. */
const STOP_TIMEOUT_MS = 5_000;

export interface StartOptions {
  port?: number;
  host?: string;
  data?: string;
}

/** Runs the coordinator in the foreground until SIGINT or SIGTERM. */
export async function start(options: StartOptions): Promise<void> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (options.port !== undefined) env.PORT = String(options.port);
  if (options.host !== undefined) env.HOST = options.host;
  if (options.data !== undefined) env.WEBPVM_DATA = options.data;

  const config = loadConfig(env);
  const stopped = untilStopSignal();
  const coordinator = await startCoordinator(config).catch((error: unknown) => {
    throw listenError(error, `${config.host}:${config.port}`);
  });
  const lines = [
    `webpvm coordinator listening on ${coordinator.url}`,
    `  host page  ${coordinator.url}/`,
    `  dashboard  ${coordinator.url}/dashboard`,
  ];
  if (coordinator.firstAdminToken !== null) {
    lines.push(
      '',
      `admin token: ${coordinator.firstAdminToken}`,
      'It will not be shown again: keep it (export WEBPVM_TOKEN=...) and create other tokens with `webpvm token create`.',
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);

  const signal = await stopped;
  say(`${signal}: stopping the coordinator`);
  setTimeout(() => {
    say(`the coordinator did not stop within ${STOP_TIMEOUT_MS / 1000} s: exiting anyway`);
    process.exit(1);
  }, STOP_TIMEOUT_MS).unref();
  await coordinator.close();
  // Whatever the server leaves behind (keep-alive sockets, timers) must not keep a stopped coordinator alive.
  process.exit(0);
}

/** Turns the usual reasons a listen fails into advice; the person can fix them with --port or --host. */
function listenError(error: unknown, address: string): unknown {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE') return new WebpvmError('E_BAD_REQUEST', `${address} is already in use: choose another --port`);
  if (code === 'EACCES') return new WebpvmError('E_BAD_REQUEST', `no permission to listen on ${address}: choose a --port above 1023`);
  if (code === 'EADDRNOTAVAIL') return new WebpvmError('E_BAD_REQUEST', `${address}: no such local address, check --host`);
  return error;
}
