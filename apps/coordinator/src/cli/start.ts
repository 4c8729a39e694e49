import { loadConfig, startCoordinator } from '../coordinator.ts';
import { say } from './output.ts';
import { untilStopSignal } from './signals.ts';

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

  const stopped = untilStopSignal();
  const coordinator = await startCoordinator(loadConfig(env));
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
  await coordinator.close();
  // Whatever the server leaves behind (keep-alive sockets, timers) must not keep a stopped coordinator alive.
  process.exit(0);
}
