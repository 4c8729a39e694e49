import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Tab } from './browser.ts';
import { CoordinatorProcess } from '../../e2e/support/coordinator.ts';
import { type PathFigures, type StreamPlan, measureRaw, openRawChannel, openRawRelay } from './baselines.ts';
import { adminApi } from './admin-api.ts';
import { launchBrowser, openHostTab } from './browser.ts';
import { startEchoServer } from './echo-server.ts';
import { cpuByPlace, msPerMessage } from './thread-cpu.ts';

/**
 * Task-to-task messaging across two tabs: webpvm's data-channel path and its relay path, against
 * a raw RTCDataChannel between the same two tabs and a raw WebSocket echo through Node (and, for
 * reference, a raw WebSocket relay through Node from one tab to the other), all in one run. The paths take turns, `rounds` times, so that a neighbour's load on this shared
 * machine falls on all of them alike. Targets (issue): channel path median RTT ≤ 1.5× raw channel
 * and throughput ≥ 80% of it; relay path throughput ≥ 70% of the raw WebSocket.
 */
const benchDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const plan: StreamPlan = {
  pings: Number(process.env.BENCH_PINGS ?? 1000),
  warmupMs: 1500,
  warmupBytes: 8 * 1024 * 1024,
  sizes: [64 * 1024, 1024 * 1024],
  streamBytes: Number(process.env.BENCH_STREAM_BYTES ?? 32 * 1024 * 1024),
};
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);

const quantile = (xs: number[], q: number) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
};
/** The median of the streams of all rounds at that size. */
const mbps = (f: PathFigures, size: number) => quantile(f.streams.filter((s) => s.size === size).map((s) => (s.size * s.count) / s.seconds / 1e6), 0.5);


async function runWebpvm(coordinator: CoordinatorProcess, tabs: Tab[], run: StreamPlan = plan): Promise<PathFigures & { counters: unknown[] }> {
  const program = fs.readFileSync(path.join(benchDir, 'programs/messaging.js'), 'utf8');
  const { id } = await adminApi(coordinator.url, 'POST', '/api/jobs', { name: 'messaging bench', program, main: run });
  for (;;) {
    const job = await adminApi(coordinator.url, 'GET', `/api/jobs/${id}`);
    if (job.state === 'done') break;
    if (job.state !== 'running' && job.state !== 'queued') throw new Error(`bench job ${job.state}: ${JSON.stringify(job.error)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  const { results } = await adminApi(coordinator.url, 'GET', `/api/jobs/${id}/results`);
  const counters = await Promise.all(tabs.map((t) => t.evaluate(() => (globalThis as any).__webpvmHost.snapshot().messages)));
  return { ...(results[0] as PathFigures), counters };
}

// One coordinator per pair of tabs, so that each job's two tasks land on the pair it is meant for.
const channelCoordinator = await CoordinatorProcess.start();
const relayCoordinator = await CoordinatorProcess.start();
// The same two paths with task workers keeping no sender log (`senderLog=off`): what crash recovery costs.
const unloggedChannelCoordinator = await CoordinatorProcess.start();
const unloggedRelayCoordinator = await CoordinatorProcess.start();
const echo = await startEchoServer();
const browser = await launchBrowser();
const paths = [
  'webpvm data channel',
  'webpvm data channel, no sender log',
  'raw RTCDataChannel',
  'raw WebSocket echo (Node)',
  'raw WebSocket relay (Node, tab to tab)',
  'webpvm relay',
  'webpvm relay, no sender log',
] as const;
/** With BENCH_CPU: CPU ms per 64 KiB message, by place, for the WebSocket paths. */
let cpu: Record<string, Record<string, number>> | null = null;
const figures: Record<string, PathFigures & { counters?: unknown[] }> = Object.fromEntries(paths.map((p) => [p, { rtts: [], streams: [] }]));
const add = (path: (typeof paths)[number], f: PathFigures & { counters?: unknown[] }) => {
  const into = figures[path]!;
  into.rtts.push(...f.rtts);
  into.streams.push(...f.streams);
  if (f.counters) into.counters = f.counters;
};
try {
  /** The two tabs, one slot each, of one path's coordinator. */
  const pair = async (coordinator: CoordinatorProcess, options: string) => [
    await openHostTab(browser, coordinator.url, `slots=1&policy=always${options}`),
    await openHostTab(browser, coordinator.url, `slots=1&policy=always${options}`),
  ];
  const channelTabs = await pair(channelCoordinator, '');
  const relayTabs = await pair(relayCoordinator, '&p2p=off');
  const unloggedChannelTabs = await pair(unloggedChannelCoordinator, '&senderLog=off');
  const unloggedRelayTabs = await pair(unloggedRelayCoordinator, '&p2p=off&senderLog=off');
  await openRawChannel(channelTabs[0]!, channelTabs[1]!);
  await openRawRelay(channelTabs[1]!, echo.url);
  for (let round = 0; round < rounds; round++) {
    add('webpvm data channel', await runWebpvm(channelCoordinator, channelTabs));
    add('webpvm data channel, no sender log', await runWebpvm(unloggedChannelCoordinator, unloggedChannelTabs));
    add('raw RTCDataChannel', await measureRaw(channelTabs[0]!, { kind: 'channel' }, plan));
    add('raw WebSocket echo (Node)', await measureRaw(channelTabs[0]!, { kind: 'websocket', url: echo.url }, plan));
    add('raw WebSocket relay (Node, tab to tab)', await measureRaw(channelTabs[0]!, { kind: 'websocket-relay', url: echo.url }, plan));
    add('webpvm relay', await runWebpvm(relayCoordinator, relayTabs));
    add('webpvm relay, no sender log', await runWebpvm(unloggedRelayCoordinator, unloggedRelayTabs));
  }
  if (process.env.BENCH_CPU) {
    // Four 64 KiB streams per path, nearly nothing else, so that what the processes used is the
    // streams'. Each is as long as a timed one: a task that writes more at once than its lane
    // queues (64 MiB) sends the rest through its page, a path the timed streams do not take.
    const streamOnly: StreamPlan = { pings: 10, warmupMs: 0, warmupBytes: 0, sizes: Array(4).fill(64 * 1024), streamBytes: 32 * 1024 * 1024 };
    const messages = (streamOnly.sizes.length * streamOnly.streamBytes) / (64 * 1024);
    const node = { coordinator: relayCoordinator.pid!, 'bench process (echo server)': process.pid };
    const measured: Record<string, Record<string, number>> = {};
    for (const [name, run] of [
      ['raw WebSocket echo (Node)', () => measureRaw(channelTabs[0]!, { kind: 'websocket', url: echo.url }, streamOnly)],
      ['raw WebSocket relay (Node, tab to tab)', () => measureRaw(channelTabs[0]!, { kind: 'websocket-relay', url: echo.url }, streamOnly)],
      ['webpvm relay', () => runWebpvm(relayCoordinator, relayTabs, streamOnly)],
    ] as const) {
      const before = cpuByPlace(node);
      await run();
      measured[name] = msPerMessage(before, cpuByPlace(node), messages);
    }
    cpu = measured;
  }
} finally {
  await browser.close();
  await echo.close();
  await channelCoordinator.stop();
  await relayCoordinator.stop();
  await unloggedChannelCoordinator.stop();
  await unloggedRelayCoordinator.stop();
}

const rows = Object.entries(figures).map(([path, f]) => ({
  path,
  medianRttMs: +quantile(f.rtts, 0.5).toFixed(3),
  p99RttMs: +quantile(f.rtts, 0.99).toFixed(3),
  mbPerSecond64KiB: +mbps(f, 64 * 1024).toFixed(1),
  mbPerSecond1MiB: +mbps(f, 1024 * 1024).toFixed(1),
}));
const by = (name: string) => rows.find((r) => r.path === name)!;
const channel = by('webpvm data channel');
const raw = by('raw RTCDataChannel');
const relay = by('webpvm relay');
const ws = by('raw WebSocket echo (Node)');
const wsRelay = by('raw WebSocket relay (Node, tab to tab)');
const unloggedChannel = by('webpvm data channel, no sender log');
const unloggedRelay = by('webpvm relay, no sender log');
const ratios = {
  channelRttToRaw: +(channel.medianRttMs / raw.medianRttMs).toFixed(2),
  channelThroughput64KiBToRaw: +(channel.mbPerSecond64KiB / raw.mbPerSecond64KiB).toFixed(2),
  channelThroughput1MiBToRaw: +(channel.mbPerSecond1MiB / raw.mbPerSecond1MiB).toFixed(2),
  relayThroughput64KiBToWebSocket: +(relay.mbPerSecond64KiB / ws.mbPerSecond64KiB).toFixed(2),
  relayThroughput1MiBToWebSocket: +(relay.mbPerSecond1MiB / ws.mbPerSecond1MiB).toFixed(2),
  relayThroughput64KiBToRawRelay: +(relay.mbPerSecond64KiB / wsRelay.mbPerSecond64KiB).toFixed(2),
  relayThroughput1MiBToRawRelay: +(relay.mbPerSecond1MiB / wsRelay.mbPerSecond1MiB).toFixed(2),
  senderLogChannelRtt: +(channel.medianRttMs / unloggedChannel.medianRttMs).toFixed(2),
  senderLogChannelThroughput64KiB: +(channel.mbPerSecond64KiB / unloggedChannel.mbPerSecond64KiB).toFixed(2),
  senderLogChannelThroughput1MiB: +(channel.mbPerSecond1MiB / unloggedChannel.mbPerSecond1MiB).toFixed(2),
  senderLogRelayThroughput64KiB: +(relay.mbPerSecond64KiB / unloggedRelay.mbPerSecond64KiB).toFixed(2),
  senderLogRelayThroughput1MiB: +(relay.mbPerSecond1MiB / unloggedRelay.mbPerSecond1MiB).toFixed(2),
};
console.log(`\nmessaging: task to task across two tabs; ${rounds} rounds, the paths taking turns; each round ${plan.pings} pings and, per size, a stream of ${plan.streamBytes / 2 ** 20} MiB after a warm-up\n`);
console.table(rows);
console.table([
  { ratio: 'channel median RTT ÷ raw channel', value: ratios.channelRttToRaw, target: '≤ 1.5' },
  { ratio: 'channel MB/s ÷ raw channel (64 KiB)', value: ratios.channelThroughput64KiBToRaw, target: '≥ 0.8' },
  { ratio: 'channel MB/s ÷ raw channel (1 MiB)', value: ratios.channelThroughput1MiBToRaw, target: '≥ 0.8' },
  { ratio: 'relay MB/s ÷ raw WebSocket (64 KiB)', value: ratios.relayThroughput64KiBToWebSocket, target: '≥ 0.7' },
  { ratio: 'relay MB/s ÷ raw WebSocket (1 MiB)', value: ratios.relayThroughput1MiBToWebSocket, target: '≥ 0.7' },
  { ratio: 'relay MB/s ÷ raw tab-to-tab relay (64 KiB)', value: ratios.relayThroughput64KiBToRawRelay, target: '(reported)' },
  { ratio: 'relay MB/s ÷ raw tab-to-tab relay (1 MiB)', value: ratios.relayThroughput1MiBToRawRelay, target: '(reported)' },
  { ratio: 'sender log on ÷ off: channel median RTT', value: ratios.senderLogChannelRtt, target: '≤ 1.11' },
  { ratio: 'sender log on ÷ off: channel MB/s (64 KiB)', value: ratios.senderLogChannelThroughput64KiB, target: '≥ 0.9' },
  { ratio: 'sender log on ÷ off: channel MB/s (1 MiB)', value: ratios.senderLogChannelThroughput1MiB, target: '≥ 0.9' },
  { ratio: 'sender log on ÷ off: relay MB/s (64 KiB)', value: ratios.senderLogRelayThroughput64KiB, target: '≥ 0.9' },
  { ratio: 'sender log on ÷ off: relay MB/s (1 MiB)', value: ratios.senderLogRelayThroughput1MiB, target: '≥ 0.9' },
]);
console.log('host message counters, data-channel run:', JSON.stringify(figures['webpvm data channel']!.counters));
if (cpu) {
  const byPath = cpu;
  const places = [...new Set(Object.values(byPath).flatMap((m) => Object.keys(m)))];
  const column = (place: string) => Object.fromEntries(Object.entries(byPath).map(([name, m]) => [name, m[place] ?? 0]));
  const total = Object.fromEntries(Object.entries(byPath).map(([name, m]) => [name, +Object.values(m).reduce((a, b) => a + b, 0).toFixed(3)]));
  console.log('\nCPU ms per 64 KiB message, by place (BENCH_CPU):');
  console.table({ ...Object.fromEntries(places.map((place) => [place, column(place)])), total });
}
const out = path.join(benchDir, 'results/messaging.json');
fs.writeFileSync(
  out,
  `${JSON.stringify({ date: new Date().toISOString(), plan, rounds, rows, ratios, counters: { channel: figures['webpvm data channel']!.counters, relay: figures['webpvm relay']!.counters }, ...(cpu ? { cpuMsPerMessage: cpu } : {}) }, null, 2)}\n`,
);
console.log(`written ${path.relative(process.cwd(), out)}`);
