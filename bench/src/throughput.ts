import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CoordinatorProcess } from '../../e2e/support/coordinator.ts';
import { adminApi } from './admin-api.ts';
import { launchBrowser, openHostTab } from './browser.ts';
import { cpuSeconds } from './process-cpu.ts';
import { SimulatedHost } from './simulated-host.ts';

/**
 * Tiny tasks (x → x²) through one coordinator: first from real browser tabs, then from many
 * simulated hosts in Node, then the same simulated hosts against a null server that speaks the
 * protocol but schedules and stores nothing (the transport's ceiling, measured in the same run).
 */
const TASKS = Number(process.env.BENCH_TASKS ?? 20_000);
const TABS = Number(process.env.BENCH_TABS ?? 4);
const SIM_HOSTS = Number(process.env.BENCH_SIM_HOSTS ?? 20);
const SIM_SLOTS = Number(process.env.BENCH_SIM_SLOTS ?? 4);
const PROGRAM = 'export default (ctx, x) => x * x;';
const benchDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

interface Row {
  scenario: string;
  tasks: number;
  seconds: number;
  tasksPerSecond: number;
  serverCpuSeconds: number;
  serverCpuMicrosPerTask: number;
}

const row = (scenario: string, seconds: number, cpu: number): Row => ({
  scenario,
  tasks: TASKS,
  seconds: +seconds.toFixed(3),
  tasksPerSecond: Math.round(TASKS / seconds),
  serverCpuSeconds: +cpu.toFixed(2),
  serverCpuMicrosPerTask: Math.round((cpu / TASKS) * 1e6),
});


async function runJob(coordinator: CoordinatorProcess, label: string): Promise<Row> {
  const inputs = Array.from({ length: TASKS }, (_, i) => i);
  const cpuBefore = cpuSeconds(coordinator.pid!);
  const started = performance.now();
  const { id } = await adminApi(coordinator.url, 'POST', '/api/jobs', { name: label, program: PROGRAM, inputs });
  for (;;) {
    const job = await adminApi(coordinator.url, 'GET', `/api/jobs/${id}`);
    if (job.state === 'done') break;
    if (job.state !== 'running' && job.state !== 'queued') throw new Error(`job ended ${job.state}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const seconds = (performance.now() - started) / 1000;
  const { results } = await adminApi(coordinator.url, 'GET', `/api/jobs/${id}/results`);
  if (results.length !== TASKS || results.some((r: number, i: number) => r !== i * i)) throw new Error(`${label}: wrong results`);
  return row(label, seconds, cpuSeconds(coordinator.pid!) - cpuBefore);
}

async function browserTabs(): Promise<Row> {
  const coordinator = await CoordinatorProcess.start({ WEBPVM_CHECKPOINT_INTERVAL_MS: '1000' });
  const browser = await launchBrowser();
  try {
    for (let i = 0; i < TABS; i++) await openHostTab(browser, coordinator.url, 'slots=1&policy=always');
    return await runJob(coordinator, `${TABS} browser tabs × 1 slot`);
  } finally {
    await browser.close();
    await coordinator.stop();
  }
}

async function simulatedHosts(): Promise<Row> {
  const coordinator = await CoordinatorProcess.start();
  const hosts = Array.from({ length: SIM_HOSTS }, () => new SimulatedHost(`${coordinator.url.replace('http', 'ws')}/ws`, SIM_SLOTS));
  try {
    await Promise.all(hosts.map((h) => h.connect()));
    return await runJob(coordinator, `${SIM_HOSTS} simulated hosts × ${SIM_SLOTS} slots`);
  } finally {
    for (const h of hosts) h.close();
    await coordinator.stop();
  }
}

async function nullServer(): Promise<Row> {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', path.join(benchDir, 'src/null-coordinator.ts'), String(TASKS)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve) => child.stdout!.once('data', (d) => resolve(Number(String(d).trim()))));
  const hosts = Array.from({ length: SIM_HOSTS }, () => new SimulatedHost(`ws://127.0.0.1:${port}`, SIM_SLOTS));
  try {
    const cpuBefore = cpuSeconds(child.pid!);
    const started = performance.now();
    await Promise.all(hosts.map((h) => h.connect()));
    while (hosts.reduce((n, h) => n + h.completed, 0) < TASKS) await new Promise((r) => setTimeout(r, 5));
    const seconds = (performance.now() - started) / 1000;
    return row(`baseline: null server, same ${SIM_HOSTS} simulated hosts`, seconds, cpuSeconds(child.pid!) - cpuBefore);
  } finally {
    for (const h of hosts) h.close();
    child.kill('SIGTERM');
  }
}

const rows: Row[] = [];
rows.push(await browserTabs());
rows.push(await simulatedHosts());
rows.push(await nullServer());

const baseline = rows[2]!.tasksPerSecond;
console.log(`\nthroughput: ${TASKS} tasks of x → x² (2-core machine; ratios are to the null server in this run)\n`);
console.table(
  rows.map((r) => ({
    scenario: r.scenario,
    'tasks/s': r.tasksPerSecond,
    'ratio to baseline': +(r.tasksPerSecond / baseline).toFixed(2),
    seconds: r.seconds,
    'server CPU µs/task': r.serverCpuMicrosPerTask,
  })),
);
const out = path.join(benchDir, 'results/throughput.json');
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(
  out,
  `${JSON.stringify({ date: new Date().toISOString(), tasks: TASKS, target: { tasksPerSecond: 5000 }, baselineTasksPerSecond: baseline, rows }, null, 2)}\n`,
);
console.log(`written ${path.relative(process.cwd(), out)}`);
