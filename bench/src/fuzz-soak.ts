import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { attack, honestHost } from '../../apps/coordinator/test/support/fuzz-attack.ts';
import { ADMIN_TOKEN, CoordinatorProcess } from '../../e2e/support/coordinator.ts';
import { adminApi } from './admin-api.ts';

/**
 * The fuzz suite's attack (apps/coordinator/test/fuzz.test.ts, 200,000 frames in `npm test`) as a
 * soak against a coordinator process of its own: BENCH_FUZZ_FRAMES mutated and random frames at
 * `/ws`, junk at `/lane` and `/peerjs`, fuzzed REST requests, while two honest hosts run a job of
 * BENCH_FUZZ_TASKS squares. Baselines from the same run: the same job with no attack, and the
 * coordinator's memory before it. It reports whether the coordinator stayed up and answered no
 * frame or request with an internal error, the job's results, its time under fire against the
 * quiet run, and the coordinator's RSS before, half-way through, at its peak during, and after the
 * attack: bounded memory grows in the first half and then stays.
 */
const benchDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const FRAMES = Number(process.env.BENCH_FUZZ_FRAMES ?? 2_000_000);
const TASKS = Number(process.env.BENCH_FUZZ_TASKS ?? 20_000);
const REQUESTS = Number(process.env.BENCH_FUZZ_REQUESTS ?? 4_000);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const mib = (bytes: number) => Math.round(bytes / 1024 ** 2);

function rss(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? 0) * 1024;
}

/** Once `ready` resolves, submits the squares job and runs it on two honest hosts, checking every result; its seconds by the coordinator's stamps. */
async function squares(url: string, name: string, ready: Promise<unknown> = Promise.resolve()): Promise<{ id: string; seconds: number; exact: boolean }> {
  await ready;
  const { id } = await adminApi(url, 'POST', '/api/jobs', { name, program: 'export default (ctx, x) => x * x', inputs: Array.from({ length: TASKS }, (_, i) => i) });
  const key = (who: string) => `${who}-${name}`.replace(/[^A-Za-z0-9_-]/g, '-').padEnd(40, 'x');
  const honest = [await honestHost(url, key('honest-a')), await honestHost(url, key('honest-b'))];
  let job;
  for (;;) {
    job = await adminApi(url, 'GET', `/api/jobs/${id}`);
    if (job.state !== 'queued' && job.state !== 'running') break;
    await sleep(50);
  }
  for (const socket of honest) socket.close();
  const { results } = await adminApi(url, 'GET', `/api/jobs/${id}/results`);
  const exact = job.state === 'done' && results.length === TASKS && results.every((r: number, i: number) => r === i * i);
  return { id, seconds: (Date.parse(job.finishedAt) - Date.parse(job.createdAt)) / 1000, exact };
}

const coordinator = await CoordinatorProcess.start({ WEBPVM_HEARTBEAT_MS: '5000', WEBPVM_HOST_TIMEOUT_MS: '15000', WEBPVM_LOG_LEVEL: 'error' });
try {
  const pid = coordinator.pid!;
  const { url } = coordinator;
  const quiet = await squares(url, 'quiet');
  const rssBefore = rss(pid);
  // RSS every 250 ms: memory that is bounded stops growing after the attack's first half
  const samples: number[] = [];
  const sampler = setInterval(() => samples.push(rss(pid)), 250);

  console.log(`fuzz soak: ${FRAMES.toLocaleString('en')} frames at /ws, junk at /lane and /peerjs, ${REQUESTS.toLocaleString('en')} requests; a job of ${TASKS.toLocaleString('en')} squares quiet and under fire\n`);
  const started = Date.now();
  // the job under fire is submitted first, so that well-formed frames name its tids
  const { id } = await adminApi(url, 'POST', '/api/jobs', { name: 'target', program: 'export default (ctx, x) => x * x', inputs: [1] });
  const under = attack({ url, token: ADMIN_TOKEN, jobId: id, frames: FRAMES, requests: REQUESTS });
  const fired = await squares(url, 'under fire', sleep(1000));
  const { internalErrors, serverErrors } = await under;
  const attackSeconds = (Date.now() - started) / 1000;
  clearInterval(sampler);
  const rssPeak = Math.max(rssBefore, ...samples);
  const rssHalf = samples[Math.floor(samples.length / 2)] ?? rssBefore;
  const healthy = (await fetch(`${url}/healthz`)).ok;
  await sleep(2000);
  const rssAfter = rss(pid);
  const metrics = await (await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).text();
  const counted = [...metrics.matchAll(/^webpvm_host_(?:frames_in_total\{[^}]*\}|bad_frames_total) (\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);

  const rows = [
    ['frames thrown / counted by the coordinator', `${FRAMES.toLocaleString('en')} / ${counted.toLocaleString('en')}`],
    ['attack seconds (frames thrown per second)', `${attackSeconds.toFixed(1)} (${Math.round(FRAMES / attackSeconds).toLocaleString('en')})`],
    ['internal errors answered / 5xx answers', `${internalErrors.length} / ${serverErrors.length}`],
    ['healthz after', healthy ? 'ok' : 'FAILING'],
    [`job of ${TASKS.toLocaleString('en')} squares: quiet s / under fire s (ratio)`, `${quiet.seconds.toFixed(2)} / ${fired.seconds.toFixed(2)} (${(fired.seconds / quiet.seconds).toFixed(2)})`],
    ['results exact, quiet / under fire', `${quiet.exact} / ${fired.exact}`],
    ['coordinator RSS MiB before / half-way / peak / after', `${mib(rssBefore)} / ${mib(rssHalf)} / ${mib(rssPeak)} / ${mib(rssAfter)}`],
  ];
  const width = Math.max(...rows.map(([k]) => k!.length));
  for (const [k, v] of rows) console.log(`${k!.padEnd(width)}  ${v}`);
  const ok = healthy && internalErrors.length === 0 && serverErrors.length === 0 && quiet.exact && fired.exact;
  console.log(`\n${ok ? 'held' : 'FAILED'}: ${ok ? 'the coordinator stayed up, answered no internal error, and both jobs are exact' : 'see above'}`);
  fs.mkdirSync(path.join(benchDir, 'results'), { recursive: true });
  fs.writeFileSync(
    path.join(benchDir, 'results/fuzz.json'),
    `${JSON.stringify(
      {
        date: new Date().toISOString(),
        plan: { frames: FRAMES, tasks: TASKS, requests: REQUESTS },
        framesCounted: counted,
        attackSeconds,
        internalErrors: internalErrors.slice(0, 20),
        serverErrors: serverErrors.slice(0, 20),
        healthy,
        job: { quiet, underFire: fired, ratio: fired.seconds / quiet.seconds },
        rssMiB: { before: mib(rssBefore), halfWay: mib(rssHalf), peak: mib(rssPeak), after: mib(rssAfter), afterToHalfWay: rssAfter / rssHalf },
      },
      null,
      2,
    )}\n`,
  );
  if (!ok) process.exitCode = 1;
} finally {
  await coordinator.stop();
}
