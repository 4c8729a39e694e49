import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { PROTOCOL_VERSION, decodeCoordinatorMessage, encode } from '@webpvm/vm-protocol';
import WebSocket from 'ws';
import { CoordinatorProcess } from '../../e2e/support/coordinator.ts';
import { cpuSeconds } from './process-cpu.ts';

/**
 * What an idle connected tab costs a coordinator, for the projection of how many coordinators a
 * grid of 100,000 tabs needs (docs/cluster.md): BENCH_HOSTS idle hosts in Node (hello, then a
 * heartbeat every heartbeat period, as a page's) connect to one coordinator; its memory before and
 * after, and its CPU over BENCH_SECONDS of heartbeats. The heartbeat is the default 5 s.
 */
const HOSTS = Number(process.env.BENCH_HOSTS ?? 5000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 30);
const HEARTBEAT_MS = 5000;
const benchDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const rssBytes = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;

function idleHost(wsUrl: string): Promise<WebSocket> {
  const socket = new WebSocket(wsUrl);
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.once('open', () =>
      socket.send(encode({ type: 'hello', protocol: PROTOCOL_VERSION, identity: null, slots: 4, running: [], userAgent: 'bench idle', volunteer: randomBytes(32).toString('base64url') })),
    );
    socket.on('message', (data) => {
      const decoded = decodeCoordinatorMessage(data.toString());
      if (!decoded.ok || decoded.value.type !== 'welcome') return;
      const { heartbeatMs } = decoded.value;
      // spread over the period, as tabs that joined at different times
      setTimeout(() => setInterval(() => socket.readyState === WebSocket.OPEN && socket.send(encode({ type: 'heartbeat' })), heartbeatMs), Math.random() * heartbeatMs);
      resolve(socket);
    });
  });
}

const coordinator = await CoordinatorProcess.start({ WEBPVM_HEARTBEAT_MS: String(HEARTBEAT_MS), WEBPVM_HOST_TIMEOUT_MS: '15000', WEBPVM_HOSTS_PER_ADDRESS: String(HOSTS + 10) });
const sockets: WebSocket[] = [];
try {
  await sleep(2000);
  const rssBefore = rssBytes(coordinator.pid!);
  const wsUrl = `${coordinator.url.replace('http', 'ws')}/ws`;
  const connectStarted = performance.now();
  const cpuBeforeConnect = cpuSeconds(coordinator.pid!);
  for (let i = 0; i < HOSTS; i += 200) sockets.push(...(await Promise.all(Array.from({ length: Math.min(200, HOSTS - i) }, () => idleHost(wsUrl)))));
  const connectSeconds = (performance.now() - connectStarted) / 1000;
  const connectCpu = cpuSeconds(coordinator.pid!) - cpuBeforeConnect;
  await sleep(HEARTBEAT_MS);
  const cpuBefore = cpuSeconds(coordinator.pid!);
  await sleep(SECONDS * 1000);
  const idleCpu = cpuSeconds(coordinator.pid!) - cpuBefore;
  const rssAfter = rssBytes(coordinator.pid!);
  const { hosts } = (await (await fetch(`${coordinator.url}/healthz`)).json()) as { hosts: number };
  const heartbeats = (HOSTS * SECONDS * 1000) / HEARTBEAT_MS;
  const result = {
    date: new Date().toISOString(),
    hosts: HOSTS,
    connected: hosts,
    heartbeatMs: HEARTBEAT_MS,
    seconds: SECONDS,
    connectSeconds: +connectSeconds.toFixed(2),
    connectCpuMicrosPerHost: Math.round((connectCpu / HOSTS) * 1e6),
    rssBeforeMiB: Math.round(rssBefore / 2 ** 20),
    rssAfterMiB: Math.round(rssAfter / 2 ** 20),
    rssKiBPerHost: Math.round((rssAfter - rssBefore) / HOSTS / 1024),
    idleCpuShare: +(idleCpu / SECONDS).toFixed(3),
    cpuMicrosPerHeartbeat: Math.round((idleCpu / heartbeats) * 1e6),
  };
  console.log(`\nconnections: ${HOSTS} idle hosts on one coordinator (SQLite), heartbeat every ${HEARTBEAT_MS / 1000} s, ${SECONDS} s measured`);
  console.table([result]);
  fs.mkdirSync(path.join(benchDir, 'results'), { recursive: true });
  fs.writeFileSync(path.join(benchDir, 'results/connections.json'), `${JSON.stringify(result, null, 2)}\n`);
  if (hosts !== HOSTS) throw new Error(`only ${hosts} of ${HOSTS} hosts stayed connected`);
} finally {
  for (const socket of sockets) socket.terminate();
  await coordinator.stop();
}
