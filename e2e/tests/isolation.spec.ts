import { expect, test } from '../support/fixtures.ts';
import { chromium } from '@playwright/test';
import { startCanary } from '../support/canary.ts';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from '../support/chromium.ts';
import { openHost } from '../support/hosts.ts';

test('the host page is cross-origin isolated under its strict policy, and its task workers run tasks', async ({ browser, api }) => {
  // openHost waits until the page is connected: its WebSocket to the coordinator works under COEP and the CSP
  const tab = await openHost(browser, api.baseUrl, 1);
  const page = await tab.page.evaluate(async () => {
    const violations: string[] = [];
    document.addEventListener('securitypolicyviolation', (e) => violations.push(e.violatedDirective));
    // the page's own workers come from its origin only: a blob: worker is refused
    const blob = await new Promise<string>((resolve) => {
      try {
        const worker = new Worker(URL.createObjectURL(new Blob(['postMessage(1)'], { type: 'text/javascript' })));
        worker.onmessage = () => resolve('ran');
        worker.onerror = () => resolve('refused');
      } catch {
        resolve('refused');
      }
    });
    return { isolated: crossOriginIsolated, shared: typeof SharedArrayBuffer, blob, violations };
  });
  expect(page).toEqual({ isolated: true, shared: 'function', blob: 'refused', violations: ['worker-src'] });

  // a task worker (its own script, with CSP and COEP) imports its program and runs it
  const id = await api.submit({ name: 'isolated', program: 'export default (ctx, x) => x * 2', inputs: [1, 2, 3] });
  await api.waitForState(id, 'done');
  expect(await api.results(id)).toEqual([2, 4, 6]);
  await tab.close();
});

/** Tries every way out of the sandbox and into the volunteer's storage; reports what each gave. */
const PRYING_PROGRAM = `export default async (ctx, { coordinator, canary }) => {
  const blocked = [];
  self.addEventListener('securitypolicyviolation', (e) => blocked.push(e.blockedURI));
  const outcome = async (attempt) => {
    try {
      return await attempt();
    } catch (e) {
      return e.name;
    }
  };
  const within = (promise) => Promise.race([promise, new Promise((resolve) => setTimeout(() => resolve('no answer'), 2000))]);
  const socket = (url) => within(new Promise((resolve) => {
    const s = new WebSocket(url);
    s.onopen = () => resolve('open');
    s.onerror = () => resolve('refused');
  }));
  const request = (r) => new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
  const storage = {
    databases: await outcome(async () => (await indexedDB.databases()).map((d) => d.name)),
    hostDatabase: await outcome(async () => [...(await request(indexedDB.open('webpvm-host'))).objectStoreNames]),
    caches: await outcome(async () => await caches.keys()),
    locks: await outcome(async () => (await navigator.locks.query()).held.map((l) => l.name)),
    broadcast: await outcome(async () => {
      const channel = new BroadcastChannel('webpvm-canary');
      channel.postMessage('from task code');
      channel.close();
      return 'posted';
    }),
    localStorage: typeof localStorage,
    document: typeof document,
  };
  const network = {
    fetchCanary: await outcome(() => fetch(canary + '/fetch').then(() => 'fetched')),
    fetchCoordinator: await outcome(() => fetch(coordinator + '/api/jobs').then(() => 'fetched')),
    socketCanary: await socket(canary.replace('http', 'ws') + '/socket'),
    socketHost: await socket(coordinator.replace('http', 'ws') + '/ws'),
    // allowed by the policy, refused by the coordinator: an unknown token
    socketLane: await socket(coordinator.replace('http', 'ws') + '/lane?token=${'0'.repeat(32)}'),
    eventSource: await within(new Promise((resolve) => {
      const source = new EventSource(canary + '/events');
      source.onopen = () => resolve('open');
      source.onerror = () => {
        source.close();
        resolve('error');
      };
    })),
    importCanary: await outcome(() => import(canary + '/module.js').then(() => 'imported')),
    importProgram: await outcome(() => import(coordinator + '/programs/' + '0'.repeat(64) + '.js').then(() => 'imported')),
    importScripts: typeof importScripts,
  };
  await new Promise((resolve) => setTimeout(resolve, 200));
  return { origin: self.origin, isolated: crossOriginIsolated, storage, network, blocked: [...new Set(blocked.map((u) => u.replace(/\\?.*/, '')))].sort() };
}`;

test('task code reaches none of the volunteer page’s storage and no network but its relay lanes', async ({ browser, api }) => {
  const canary = await startCanary();
  try {
    const tab = await openHost(browser, api.baseUrl, 1);
    // what the volunteer's page holds besides the host's database: each a way task code must not find
    await tab.page.evaluate(async () => {
      localStorage.setItem('webpvm-canary', 'secret');
      await caches.open('webpvm-canary');
      void navigator.locks.request('webpvm-canary', () => new Promise(() => {}));
      const heard: unknown[] = [];
      new BroadcastChannel('webpvm-canary').onmessage = (event) => heard.push(event.data);
      (globalThis as unknown as { __heard: unknown[] }).__heard = heard;
    });
    const id = await api.submit({ name: 'prying', program: PRYING_PROGRAM, inputs: [{ coordinator: api.baseUrl, canary: canary.url }] });
    await api.waitForState(id, 'done');
    expect(await api.results(id)).toEqual([
      {
        origin: 'null',
        isolated: true,
        storage: {
          databases: 'SecurityError',
          hostDatabase: 'SecurityError',
          // not even there: no Cache Storage, and no lock manager on navigator
          caches: 'ReferenceError',
          locks: 'TypeError',
          // it constructs, in the frame's own opaque origin, which no page shares
          broadcast: 'posted',
          localStorage: 'undefined',
          document: 'undefined',
        },
        network: {
          fetchCanary: 'TypeError',
          fetchCoordinator: 'TypeError',
          socketCanary: 'refused',
          socketHost: 'refused',
          socketLane: 'refused',
          eventSource: 'error',
          importCanary: 'TypeError',
          importProgram: 'TypeError',
          importScripts: 'undefined',
        },
        blocked: [`${api.baseUrl}/api/jobs`, `${api.baseUrl}/programs/${'0'.repeat(64)}.js`, `${api.baseUrl.replace('http', 'ws')}/ws`, `${canary.url}/events`, `${canary.url}/fetch`, `${canary.url}/module.js`, `${canary.url.replace('http', 'ws')}/socket`].sort(),
      },
    ]);
    expect(canary.hits).toEqual([]);
    expect(await tab.page.evaluate(() => (globalThis as unknown as { __heard: unknown[] }).__heard)).toEqual([]);
    await tab.close();
  } finally {
    await canary.close();
  }
});

test('task code starts no workers of its own and cannot end its worker: the constructors and close are gone before the program loads', async ({ browser, api }) => {
  const canary = await startCanary();
  try {
    await openHost(browser, api.baseUrl, 1);
    // Each nested worker, if it started, would call the canary at once.
    const program = `export default async (ctx, canary) => {
      const source = 'fetch(' + JSON.stringify(canary) + ' + "/nested")';
      const urls = [URL.createObjectURL(new Blob([source], { type: 'text/javascript' })), 'data:text/javascript,' + encodeURIComponent(source)];
      const tried = [];
      for (const name of ['Worker', 'SharedWorker']) {
        for (const url of urls) {
          try {
            new globalThis[name](url);
            tried.push(name + ' started');
          } catch (e) {
            tried.push(name + ' ' + e.name);
          }
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
      return { worker: typeof Worker, sharedWorker: typeof SharedWorker, close: typeof close, tried };
    }`;
    const id = await api.submit({ name: 'no-nested-workers', program, inputs: [canary.url] });
    await api.waitForState(id, 'done');
    expect(await api.results(id)).toEqual([
      { worker: 'undefined', sharedWorker: 'undefined', close: 'undefined', tried: ['Worker TypeError', 'Worker TypeError', 'SharedWorker TypeError', 'SharedWorker TypeError'] },
    ]);
    expect(canary.hits).toEqual([]);
  } finally {
    await canary.close();
  }
});

test('a task that crashes its worker fails alone: another job’s tasks on the same tab finish', async ({ browser, api }) => {
  const tab = await openHost(browser, api.baseUrl, 2);
  // an error nothing catches ends the worker's part in the task; the other job shares the tab
  const crashing = await api.submit({
    name: 'crashing',
    program: `export default async () => {
      setTimeout(() => { throw new Error('crashed on purpose'); }, 50);
      await new Promise(() => {});
    }`,
    inputs: [null],
    maxAttempts: 1,
  });
  const steady = await api.submit({ name: 'steady', program: 'export default async (ctx, x) => { await new Promise((r) => setTimeout(r, 300)); return x * x; }', inputs: [1, 2, 3, 4, 5, 6] });
  const failed = await api.waitForState(crashing, 'failed');
  expect(failed.tasks).toMatchObject({ total: 1, failed: 1 });
  expect(failed.error?.message).toContain('crashed on purpose');
  await api.waitForState(steady, 'done');
  expect(await api.results(steady)).toEqual([1, 4, 9, 16, 25, 36]);
  expect((await tab.snapshot()).connection).toBe('connected');
  await tab.close();
});

test('a task that tells its frame it froze, unasked, ends only its own worker and fails: the job’s other tasks finish', async ({ browser, api }) => {
  const tab = await openHost(browser, api.baseUrl, 2);
  // What the runtime tells the frame as a frozen task's state leaves it (a port and the state); task code can say it too.
  const id = await api.submit({
    name: 'false freeze',
    program: `export default async (ctx, x) => {
      if (x === 0) {
        const { port1 } = new MessageChannel();
        postMessage({ type: 'frozen', port: port1, message: null, transfer: [] }, [port1]);
        await new Promise(() => {});
      }
      await new Promise((r) => setTimeout(r, 200));
      return x;
    }`,
    inputs: [0, 1, 2, 3],
    maxAttempts: 1,
  });
  const failed = await api.waitForState(id, 'failed');
  expect(failed.tasks).toMatchObject({ total: 4, failed: 1, done: 3 });
  expect(failed.error?.message).toContain('the task worker ended itself without being asked to leave');
  expect((await tab.snapshot()).connection).toBe('connected');
  await tab.close();
});

test('a job whose task exhausts memory loses only its own tab’s sandbox: the host page and another job’s tasks go on', async ({ api }) => {
  // A browser of its own, its heaps capped, so that running out of memory comes soon and stays small.
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: [...CHROMIUM_ARGS, '--js-flags=--max-old-space-size=256'] });
  try {
    await openHost(browser, api.baseUrl, 2);
    const steady = await api.submit({ name: 'steady', program: 'export default async (ctx, x) => { await new Promise((r) => setTimeout(r, 1000)); return x * x; }', inputs: Array.from({ length: 12 }, (_, i) => i) });
    const greedy = await api.submit({
      name: 'greedy',
      program: 'export default async () => { const kept = []; for (;;) kept.push(new Array(1e6).fill(1.5)); }',
      inputs: [null],
      maxAttempts: 1,
    });
    // The frame's process dies; the page notices its silence and fails the task as its own doing.
    // (Playwright reports the page crashed when one of its frames' processes does: only the API is asked here.)
    const failed = await api.waitForState(greedy, 'failed', 100_000);
    expect(failed.error?.message).toContain('task sandbox stopped answering');
    await api.waitForState(steady, 'done', 100_000);
    expect(await api.results(steady)).toEqual(Array.from({ length: 12 }, (_, i) => i * i));
    const hosts = (await (await api.request('GET', '/api/hosts')).json()) as { hosts: { connected: boolean }[] };
    expect(hosts.hosts.map((h) => h.connected)).toEqual([true]);
  } finally {
    await browser.close();
  }
});

test('the dashboard is cross-origin isolated too, and reaches the API', async ({ browser, api }) => {
  const page = await browser.newPage();
  await page.goto(`${api.baseUrl}/dashboard`);
  expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);
  await page.getByTestId('token-input').fill(api.token);
  await page.getByTestId('token-save').click();
  await expect(page.getByTestId('hosts-count')).toHaveText('0');
  await page.close();
});
