import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { ADMIN_TOKEN, CoordinatorProcess } from '../../e2e/support/coordinator.ts';
import { adminApi } from './admin-api.ts';
import { cpuSeconds } from './process-cpu.ts';
import { SimulatedHost } from './simulated-host.ts';

/**
 * One job of BENCH_SCALE_TASKS (10,000,000) trivial tasks (x → x²) through one coordinator
 * process and simulated hosts: its inputs streamed in parts (`POST /api/jobs/:id/inputs`) while it
 * runs, then every result read back in input order (`?format=ndjson`) and checked. Every
 * BENCH_SCALE_SAMPLE_MS it prints tasks/s and the coordinator's RSS; at the end, the most RSS,
 * the store's size and the total time. The coordinator holds a bounded window of the job's tasks:
 * its RSS must stay under 1 GiB.
 */
const TASKS = Number(process.env.BENCH_SCALE_TASKS ?? 10_000_000);
const SIM_HOSTS = Number(process.env.BENCH_SCALE_HOSTS ?? 20);
const SIM_SLOTS = Number(process.env.BENCH_SCALE_SLOTS ?? 4);
const SAMPLE_MS = Number(process.env.BENCH_SCALE_SAMPLE_MS ?? 10_000);
/** Inputs per part: the most one request may carry is 100,000; the CLI sends 10,000. */
const PART = 10_000;
const RSS_TARGET_BYTES = 1024 ** 3;
const PROGRAM = 'export default (ctx, x) => x * x;';
const benchDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const auth = { authorization: `Bearer ${ADMIN_TOKEN}` };

interface Sample {
  seconds: number;
  uploaded: number;
  done: number;
  tasksPerSecond: number;
  rssMiB: number;
}

/** A /proc/<pid>/status field in bytes (VmRSS: resident now; VmHWM: the most it has been). */
function memory(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? 0) * 1024;
}

const mib = (bytes: number) => Math.round(bytes / 1024 ** 2);

function directoryBytes(dir: string): number {
  return fs.readdirSync(dir, { withFileTypes: true }).reduce((n, e) => n + (e.isFile() ? fs.statSync(path.join(dir, e.name)).size : 0), 0);
}

/** Sends the inputs 0 … TASKS-1 in parts, the last one closing the job; `uploaded` counts as it goes. */
async function upload(url: string, id: string, progress: { uploaded: number }): Promise<void> {
  for (let from = 0; from < TASKS; from += PART) {
    const to = Math.min(TASKS, from + PART);
    let body = '';
    for (let i = from; i < to; i++) body += `${i}\n`;
    const res = await fetch(`${url}/api/jobs/${id}/inputs${to === TASKS ? '?close=true' : ''}`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/x-ndjson' },
      body,
    });
    if (!res.ok) throw new Error(`part from ${from}: ${res.status} ${await res.text()}`);
    progress.uploaded = to;
  }
}

/** Reads every result in input order and checks each is its input squared. */
async function checkResults(url: string, id: string): Promise<void> {
  const res = await fetch(`${url}/api/jobs/${id}/results?format=ndjson`, { headers: auth });
  if (!res.ok || !res.body) throw new Error(`results: ${res.status}`);
  const decoder = new TextDecoder();
  let pending = '';
  let index = 0;
  const reader = res.body.getReader();
  for (let read = await reader.read(); !read.done; read = await reader.read()) {
    pending += decoder.decode(read.value, { stream: true });
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const line of lines) {
      if (Number(line) !== index * index) throw new Error(`result ${index} is ${line}, not ${index * index}`);
      index++;
    }
  }
  if (index !== TASKS) throw new Error(`${index} results, not ${TASKS}`);
}

const coordinator = await CoordinatorProcess.start({
  // Simulated hosts send no heartbeat: while they wait for inputs they must not be taken for gone.
  WEBPVM_HOST_TIMEOUT_MS: String(24 * 3600 * 1000),
  WEBPVM_CHECKPOINT_INTERVAL_MS: '1000',
});
const pid = coordinator.pid!;
const hosts = Array.from({ length: SIM_HOSTS }, () => new SimulatedHost(`${coordinator.url.replace('http', 'ws')}/ws`, SIM_SLOTS));
const samples: Sample[] = [];
try {
  await Promise.all(hosts.map((h) => h.connect()));
  const rssIdle = memory(pid, 'VmRSS');
  const cpuBefore = cpuSeconds(pid);
  const started = performance.now();
  const { id } = await adminApi(coordinator.url, 'POST', '/api/jobs', { name: 'scale', program: PROGRAM, inputs: [], open: true });
  const progress = { uploaded: 0 };
  let uploadSeconds = 0;
  const uploading = upload(coordinator.url, id, progress).then(() => (uploadSeconds = (performance.now() - started) / 1000));

  console.log(`scale: ${TASKS.toLocaleString('en')} tasks, ${SIM_HOSTS} simulated hosts × ${SIM_SLOTS} slots; coordinator RSS at rest ${mib(rssIdle)} MiB\n`);
  console.log('      s    uploaded        done   tasks/s   RSS MiB');
  let lastDone = 0;
  let lastAt = started;
  for (let state = 'running'; state !== 'done'; ) {
    const due = performance.now() + SAMPLE_MS;
    let job;
    do {
      await sleep(250);
      job = await adminApi(coordinator.url, 'GET', `/api/jobs/${id}`);
    } while (performance.now() < due && (job.state === 'running' || job.state === 'queued'));
    state = job.state;
    if (state !== 'running' && state !== 'queued' && state !== 'done') throw new Error(`the job ended ${state}`);
    const now = performance.now();
    const sample: Sample = {
      seconds: +((now - started) / 1000).toFixed(1),
      uploaded: progress.uploaded,
      done: job.tasks.done,
      tasksPerSecond: Math.round(((job.tasks.done - lastDone) * 1000) / (now - lastAt)),
      rssMiB: mib(memory(pid, 'VmRSS')),
    };
    samples.push(sample);
    console.log(
      [sample.seconds, sample.uploaded, sample.done, sample.tasksPerSecond, sample.rssMiB].map((v, i) => String(v).padStart([7, 11, 11, 9, 9][i]!)).join(' '),
    );
    lastDone = job.tasks.done;
    lastAt = now;
  }
  await uploading;
  const seconds = (performance.now() - started) / 1000;
  const cpu = cpuSeconds(pid) - cpuBefore;
  const rssAfterRun = memory(pid, 'VmRSS');
  const checkStarted = performance.now();
  await checkResults(coordinator.url, id);
  const checkSeconds = (performance.now() - checkStarted) / 1000;
  const maxRss = memory(pid, 'VmHWM');
  const storeBytes = directoryBytes(coordinator.dataDir);

  const summary = {
    date: new Date().toISOString(),
    tasks: TASKS,
    simulatedHosts: SIM_HOSTS,
    slotsPerHost: SIM_SLOTS,
    partInputs: PART,
    target: { rssBytes: RSS_TARGET_BYTES },
    seconds: +seconds.toFixed(1),
    uploadSeconds: +uploadSeconds.toFixed(1),
    tasksPerSecond: Math.round(TASKS / seconds),
    coordinatorCpuSeconds: +cpu.toFixed(1),
    coordinatorCpuMicrosPerTask: Math.round((cpu / TASKS) * 1e6),
    rssIdleMiB: mib(rssIdle),
    rssAfterRunMiB: mib(rssAfterRun),
    maxRssMiB: mib(maxRss),
    maxSampledRssMiB: Math.max(...samples.map((s) => s.rssMiB)),
    storeBytes,
    storeBytesPerTask: Math.round(storeBytes / TASKS),
    resultsCheckSeconds: +checkSeconds.toFixed(1),
    samples,
  };
  console.log(`\n${TASKS.toLocaleString('en')} tasks in ${summary.seconds} s (${summary.tasksPerSecond} tasks/s; inputs sent in ${summary.uploadSeconds} s)`);
  console.log(`coordinator: ${summary.coordinatorCpuMicrosPerTask} µs CPU a task; RSS most ${summary.maxRssMiB} MiB (target < ${mib(RSS_TARGET_BYTES)} MiB), after the run ${summary.rssAfterRunMiB} MiB`);
  console.log(`store: ${mib(storeBytes)} MiB (${summary.storeBytesPerTask} bytes a task); every result read back in input order and checked in ${summary.resultsCheckSeconds} s`);
  const out = path.join(benchDir, 'results/scale.json');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, `${JSON.stringify(summary, null, 2)}\n`);
  console.log(`written ${path.relative(process.cwd(), out)}`);
  if (maxRss >= RSS_TARGET_BYTES) process.exitCode = 1;
} finally {
  for (const h of hosts) h.close();
  await coordinator.stop();
}
