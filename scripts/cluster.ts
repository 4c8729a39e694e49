import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { NatsServer, PostgresServer, untilListening } from '@webpvm/local-servers';

/*
 * `npm run cluster`: a local grid of two coordinators on one PostgreSQL database and one NATS
 * server (docs/cluster.md), to try what several coordinators do: submit to one, read from and
 * cancel through the other, stop one and watch the other take its jobs over and its tabs move
 * there. The database is a fresh one of its own, removed when this stops.
 * Ports: PORT and PORT + 1 (PORT defaults to 8080).
 */

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cli = path.join(repoRoot, 'apps/coordinator/bin/webpvm.js');
const firstPort = Number(process.env.PORT ?? 8080);
const adminToken = process.env.WEBPVM_ADMIN_TOKEN ?? `wpvm_${randomBytes(24).toString('base64url')}`;

const say = (line: string) => process.stdout.write(`${line}\n`);

say('cluster: starting PostgreSQL (a fresh database, removed when the cluster stops) and NATS');
const [postgres, nats] = await Promise.all([PostgresServer.start(), NatsServer.start()]);
const databaseUrl = postgres.createDatabase('webpvm');
const children: ChildProcess[] = [];

async function coordinator(name: string, port: number): Promise<void> {
  const child = spawn(process.execPath, [cli, 'start', '--port', String(port)], {
    cwd: repoRoot,
    env: { ...process.env, DATABASE_URL: databaseUrl, NATS_URL: nats.url, WEBPVM_ADMIN_TOKEN: adminToken, WEBPVM_PUBLIC_URL: `http://127.0.0.1:${port}` },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let output = '';
  const prefix = (data: Buffer) => {
    output += data;
    for (const line of String(data).split('\n')) if (line) say(`[${name}] ${line}`);
  };
  child.stdout!.on('data', prefix);
  child.stderr!.on('data', prefix);
  await untilListening(child, port, `coordinator ${name}`, () => output);
}

async function stop(): Promise<void> {
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
  await Promise.all(children.map((child) => (child.exitCode === null ? new Promise((resolve) => child.once('exit', resolve)) : undefined)));
  await Promise.all([postgres.stop(), nats.stop()]);
}

process.once('SIGINT', () => void stop().then(() => process.exit(0)));
process.once('SIGTERM', () => void stop().then(() => process.exit(0)));

try {
  await coordinator('a', firstPort);
  await coordinator('b', firstPort + 1);
} catch (error) {
  say(`cluster: ${error instanceof Error ? error.message : String(error)}`);
  await stop();
  process.exit(1);
}
say('');
say(`cluster: two coordinators on ${databaseUrl} and ${nats.url}`);
say(`  a  http://127.0.0.1:${firstPort}/  (dashboard /dashboard)`);
say(`  b  http://127.0.0.1:${firstPort + 1}/`);
say(`  admin token (both): ${adminToken}`);
say('  A job runs on the tabs of the coordinator it was submitted to; either one answers about it.');
say('  Stop one (kill its process) and the other takes its jobs over; its tabs move there within');
say('  about 10 s. Ctrl-C stops the cluster.');
