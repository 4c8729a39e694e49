import { expect, test } from '../support/fixtures.ts';
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

test('task code reaches no network but its relay lanes: the worker policy blocks the API and the host socket, not /lane', async ({ browser, api }) => {
  await openHost(browser, api.baseUrl, 1);
  // The program tries each and reports what the worker's Content-Security-Policy refused.
  const program = `export default async () => {
    const blocked = [];
    self.addEventListener('securitypolicyviolation', (e) => blocked.push(new URL(e.blockedURI).pathname));
    const origin = self.location.origin;
    const fetched = await fetch(origin + '/api/jobs').then(() => 'fetched', () => 'failed');
    const tried = (path) => new Promise((resolve) => {
      try {
        const socket = new WebSocket(origin.replace('http', 'ws') + path);
        socket.onopen = () => resolve('open');
        // a socket the policy blocks gets an error and no close
        socket.onerror = () => resolve('refused');
      } catch {
        resolve('refused');
      }
    });
    const sockets = [await tried('/ws'), await tried('/lane?token=${'0'.repeat(32)}')];
    await new Promise((resolve) => setTimeout(resolve, 200));
    return { fetched, sockets, blocked: [...new Set(blocked)].sort() };
  }`;
  const id = await api.submit({ name: 'no-network', program, inputs: [null] });
  await api.waitForState(id, 'done');
  // the lane socket is allowed by the policy and refused by the coordinator (an unknown token)
  expect(await api.results(id)).toEqual([{ fetched: 'failed', sockets: ['refused', 'refused'], blocked: ['/api/jobs', '/ws'] }]);
});

test('task code starts no workers of its own: the constructors are gone before the program loads', async ({ browser, api }) => {
  await openHost(browser, api.baseUrl, 1);
  const program = `export default async () => {
    const tried = [];
    for (const name of ['Worker', 'SharedWorker']) {
      try {
        new globalThis[name](location.origin + '/task-worker.js');
        tried.push(name + ' started');
      } catch (e) {
        tried.push(name + ' ' + e.name);
      }
    }
    return { worker: typeof Worker, sharedWorker: typeof SharedWorker, tried };
  }`;
  const id = await api.submit({ name: 'no-nested-workers', program, inputs: [null] });
  await api.waitForState(id, 'done');
  expect(await api.results(id)).toEqual([{ worker: 'undefined', sharedWorker: 'undefined', tried: ['Worker TypeError', 'SharedWorker TypeError'] }]);
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
