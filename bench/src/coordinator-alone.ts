import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PostgresServer } from '@webpvm/local-servers';
import { CoordinatorProcess } from '../../e2e/support/coordinator.ts';
import { adminApi } from './admin-api.ts';
import { cpuSeconds, treeCpuSeconds } from './process-cpu.ts';
import { SimulatedHost } from './simulated-host.ts';
import { type Row, rate, round } from './throughput-row.ts';

export interface CoordinatorAloneOptions {
  tasks: number;
  /** Simulated hosts, and slots each. */
  hosts: number;
  slots: number;
  /** The trivial program (x → x²) the job runs; the simulated hosts answer it themselves. */
  program: string;
  log: (what: string) => void;
}

const benchDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The coordinator's share of the cost without any browser: simulated hosts in Node (plain
 * WebSocket clients speaking the real host protocol) against the coordinator on SQLite, on
 * PostgreSQL (a server of its own, every commit durable), then against a null server that speaks
 * the same protocol but keeps nothing. Three rows, the first two as ratios to the third.
 */
export async function coordinatorAlone(options: CoordinatorAloneOptions): Promise<Row[]> {
  const onSqlite = await againstCoordinator(options, null);
  options.log('the coordinator alone on PostgreSQL: starting the server');
  const postgres = await PostgresServer.start();
  let onPostgres: Row;
  let onTwo: Row;
  try {
    onPostgres = await againstCoordinator(options, postgres);
    onTwo = await againstTwoCoordinators(options, postgres);
  } finally {
    await postgres.stop();
  }
  const nulled = await againstNullServer(options);
  for (const r of [onSqlite, onPostgres, onTwo]) r.ratio = round(rate(r) / rate(nulled), 3);
  nulled.ratio = 1;
  return [onSqlite, onPostgres, onTwo, nulled];
}

const row = (options: CoordinatorAloneOptions, system: string, seconds: number, cpu: number): Row => ({
  workload: 'coordinator alone',
  system,
  visibility: null,
  tabs: null,
  tasks: options.tasks,
  done: options.tasks,
  complete: true,
  seconds: round(seconds, 3),
  tasksPerSecond: round(options.tasks / seconds),
  ratio: null,
  serverCpuMicrosPerTask: round((cpu / options.tasks) * 1e6),
});

async function againstCoordinator(options: CoordinatorAloneOptions, postgres: PostgresServer | null): Promise<Row> {
  const { tasks, program, log } = options;
  const label = `coordinator on ${postgres ? 'PostgreSQL' : 'SQLite'}, ${options.hosts} simulated hosts × ${options.slots} slots`;
  log(`the coordinator alone on ${postgres ? 'PostgreSQL' : 'SQLite'}: ${options.hosts} simulated hosts`);
  const server = await CoordinatorProcess.start(postgres ? { DATABASE_URL: postgres.createDatabase() } : {});
  const hosts = Array.from({ length: options.hosts }, () => new SimulatedHost(`${server.url.replace('http', 'ws')}/ws`, options.slots));
  try {
    await Promise.all(hosts.map((h) => h.connect()));
    const cpuBefore = cpuSeconds(server.pid!);
    const storeCpuBefore = postgres ? treeCpuSeconds(postgres.pid) : 0;
    const started = Date.now();
    const { id } = await adminApi(server.url, 'POST', '/api/jobs', { name: label, program, inputs: Array.from({ length: tasks }, (_, i) => i) });
    const ended = await finishedAt(server.url, id);
    const cpu = cpuSeconds(server.pid!) - cpuBefore;
    const storeCpu = postgres ? treeCpuSeconds(postgres.pid) - storeCpuBefore : null;
    const { results } = await adminApi(server.url, 'GET', `/api/jobs/${id}/results`);
    if (results.length !== tasks || results.some((r: number, i: number) => r !== i * i)) throw new Error(`${label}: wrong results`);
    const measured = row(options, label, (ended - started) / 1000, cpu);
    if (storeCpu !== null) measured.storeCpuMicrosPerTask = round((storeCpu / tasks) * 1e6);
    return measured;
  } finally {
    for (const h of hosts) h.close();
    await server.stop();
  }
}

/** Polls a job until it is done; answers when it finished (its own stamp, ms). */
async function finishedAt(url: string, id: string): Promise<number> {
  for (;;) {
    const job = await adminApi(url, 'GET', `/api/jobs/${id}`);
    if (job.state === 'done') return Date.parse(job.finishedAt);
    if (job.state !== 'running' && job.state !== 'queued') throw new Error(`job ended ${job.state}`);
    await sleep(20);
  }
}

/**
 * Two coordinators on one PostgreSQL database (docs/cluster.md), half the simulated hosts on each
 * and half the tasks submitted to each (a job runs on its owner's hosts): tasks/s of both
 * together, and the CPU per task of each coordinator and of PostgreSQL. On this 2-core machine the
 * two coordinators, PostgreSQL and the hosts share the same cores.
 */
async function againstTwoCoordinators(options: CoordinatorAloneOptions, postgres: PostgresServer): Promise<Row> {
  const { tasks, program, log } = options;
  const half = Math.floor(tasks / 2);
  const perCoordinator = Math.max(1, Math.floor(options.hosts / 2));
  const label = `2 coordinators on PostgreSQL, ${perCoordinator} simulated hosts × ${options.slots} slots each`;
  log(`two coordinators on PostgreSQL: ${perCoordinator} simulated hosts each`);
  const env = { DATABASE_URL: postgres.createDatabase() };
  const servers = [await CoordinatorProcess.start(env), await CoordinatorProcess.start(env)];
  const hosts = servers.flatMap((server) => Array.from({ length: perCoordinator }, () => new SimulatedHost(`${server.url.replace('http', 'ws')}/ws`, options.slots)));
  try {
    await Promise.all(hosts.map((h) => h.connect()));
    const cpuBefore = servers.map((server) => cpuSeconds(server.pid!));
    const storeCpuBefore = treeCpuSeconds(postgres.pid);
    const started = Date.now();
    const ids = await Promise.all(
      servers.map(async (server, i) => {
        const inputs = Array.from({ length: i === 0 ? half : tasks - half }, (_, k) => k);
        return (await adminApi(server.url, 'POST', '/api/jobs', { name: `${label}, part ${i + 1}`, program, inputs })).id as string;
      }),
    );
    const ended = Math.max(...(await Promise.all(servers.map((server, i) => finishedAt(server.url, ids[i]!)))));
    const cpu = servers.map((server, i) => cpuSeconds(server.pid!) - cpuBefore[i]!);
    const storeCpu = treeCpuSeconds(postgres.pid) - storeCpuBefore;
    for (const [i, server] of servers.entries()) {
      const { results } = await adminApi(server.url, 'GET', `/api/jobs/${ids[i]}/results`);
      if (results.some((r: number, k: number) => r !== k * k)) throw new Error(`${label}: wrong results`);
    }
    const measured = row(options, label, (ended - started) / 1000, cpu[0]! + cpu[1]!);
    measured.storeCpuMicrosPerTask = round((storeCpu / tasks) * 1e6);
    measured.coordinatorCpuMicrosPerTask = cpu.map((c) => round((c / tasks) * 1e6));
    return measured;
  } finally {
    for (const h of hosts) h.close();
    await Promise.all(servers.map((server) => server.stop()));
  }
}

async function againstNullServer(options: CoordinatorAloneOptions): Promise<Row> {
  const { tasks, log } = options;
  log(`the null server: ${options.hosts} simulated hosts`);
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(benchDir, 'src/null-coordinator.ts'), String(tasks)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve) => child.stdout!.once('data', (d) => resolve(Number(String(d).trim()))));
  const hosts = Array.from({ length: options.hosts }, () => new SimulatedHost(`ws://127.0.0.1:${port}`, options.slots));
  try {
    const cpuBefore = cpuSeconds(child.pid!);
    const started = performance.now();
    await Promise.all(hosts.map((h) => h.connect()));
    while (hosts.reduce((n, h) => n + h.completed, 0) < tasks) await sleep(5);
    const seconds = (performance.now() - started) / 1000;
    return row(options, `null server, same ${options.hosts} simulated hosts`, seconds, cpuSeconds(child.pid!) - cpuBefore);
  } finally {
    for (const h of hosts) h.close();
    child.kill('SIGTERM');
  }
}
