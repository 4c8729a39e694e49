import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readProgram } from '../support/api.ts';
import { ADMIN_TOKEN } from '../support/coordinator.ts';
import { expect, test } from '../support/fixtures.ts';
import { openHosts } from '../support/hosts.ts';

test('a researcher submits a job from the dashboard, watches it finish and sees the results', async ({ browser, api }) => {
  await openHosts(browser, api.baseUrl, 2, 2);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'webpvm-dash-'));
  const programFile = path.join(dir, 'primes.ts');
  fs.writeFileSync(programFile, readProgram('examples/primes.ts'));

  const context = await browser.newContext({ acceptDownloads: true });
  const page = await context.newPage();
  await page.goto(`${api.baseUrl}/dashboard`);
  await page.getByTestId('token-input').fill(ADMIN_TOKEN);
  await page.getByTestId('token-save').click();
  await expect(page.getByTestId('hosts-count')).toContainText('2');

  await page.getByTestId('job-name').fill('primes from the dashboard');
  await page.getByTestId('program-file').setInputFiles(programFile);
  const ranges = [0, 1, 2, 3].map((i) => ({ from: i * 25_000, to: (i + 1) * 25_000 }));
  await page.getByTestId('inputs-json').fill(JSON.stringify(ranges));
  await page.getByTestId('submit-job').click();

  const row = page.getByTestId('job-row').filter({ hasText: 'primes from the dashboard' });
  await expect(row.getByTestId('job-state')).toHaveText('done', { timeout: 60_000 });
  await row.getByTestId('job-open').click();
  await expect(page.getByTestId('result-row')).toHaveCount(4);
  await expect(page.getByTestId('results-table')).toContainText('"count":2762');

  const download = page.waitForEvent('download');
  await page.getByTestId('results-download').click();
  const file = await (await download).path();
  const downloaded = JSON.parse(fs.readFileSync(file, 'utf8')) as { results: { count: number }[] } | { count: number }[];
  const counts = (Array.isArray(downloaded) ? downloaded : downloaded.results).map((r) => r.count);
  // π(25k)=2762, π(50k)=5133, π(75k)=7393, π(100k)=9592
  expect(counts).toEqual([2762, 5133 - 2762, 7393 - 5133, 9592 - 7393]);

  const jobId = await row.getAttribute('data-job-id');
  expect((await api.job(jobId!)).state).toBe('done');

  // the token is this tab's alone: it survives a reload, and logging out forgets it
  const stored = () => page.evaluate(() => [sessionStorage.getItem('webpvm.token'), localStorage.getItem('webpvm.token')]);
  expect(await stored()).toEqual([ADMIN_TOKEN, null]);
  await page.reload();
  await expect(page.getByTestId('hosts-count')).toContainText('2');
  await page.getByTestId('log-out').click();
  expect(await stored()).toEqual([null, null]);
  await expect(page.getByTestId('token-input')).toHaveValue('');
  await expect(page.getByTestId('job-row')).toHaveCount(0);
  await context.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('the dashboard says so when the token is refused', async ({ browser, api }) => {
  const page = await browser.newPage();
  await page.goto(`${api.baseUrl}/dashboard`);
  await page.getByTestId('token-input').fill('wpvm_wrong');
  await page.getByTestId('token-save').click();
  await expect(page.getByText(/token/i).and(page.getByText(/refused|invalid|unknown|401|E_UNAUTHORIZED/i)).first()).toBeVisible();
  await page.close();
});

test('cancelling a running job from the dashboard stops its tasks on the tabs', async ({ browser, api }) => {
  const [tab] = await openHosts(browser, api.baseUrl, 1, 2);
  const id = await api.submit({
    name: 'to cancel',
    program: readProgram('e2e/programs/steps.js'),
    inputs: Array.from({ length: 4 }, (_, index) => ({ index, steps: 600, stepMs: 100 })),
  });
  await expect.poll(async () => (await tab!.snapshot()).running.length).toBe(2);

  const page = await browser.newPage();
  await page.goto(`${api.baseUrl}/dashboard`);
  await page.getByTestId('token-input').fill(ADMIN_TOKEN);
  await page.getByTestId('token-save').click();
  const row = page.locator(`[data-testid="job-row"][data-job-id="${id}"]`);
  await row.getByTestId('job-cancel').click();
  await expect(row.getByTestId('job-state')).toHaveText('cancelled');

  expect((await api.job(id)).state).toBe('cancelled');
  await expect.poll(async () => (await tab!.snapshot()).running.length).toBe(0);
  expect((await tab!.snapshot()).queued).toBe(0);
  expect(await api.results(id)).toEqual([null, null, null, null]);
  await page.close();
});

test('a migration ordered over the API shows on the job’s timeline and on the event stream', async ({ browser, api }) => {
  await openHosts(browser, api.baseUrl, 2, 1);
  const id = await api.submit({
    name: 'to move',
    program: readProgram('e2e/programs/steps.js'),
    inputs: [{ index: 0, steps: 300, stepMs: 100 }],
  });
  await expect.poll(async () => (await api.job(id)).tasks.running).toBe(1);
  const tid = `${id}.0`;
  const ordered = await api.request('POST', `/api/tasks/${tid}/migrate`);
  expect(ordered.status).toBe(202);
  const { from } = (await ordered.json()) as { from: string };
  await api.waitFor(id, (job) => job.migrations === 1);

  const events = await api.request('GET', `/api/events?job=${id}&after=0`);
  expect(events.headers.get('content-type')).toContain('text/event-stream');
  const reader = events.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = '';
  while (!text.includes('\n\n')) text += (await reader.read()).value ?? '';
  await reader.cancel();
  const event = JSON.parse(/^data: (.*)$/m.exec(text)![1]!) as { tid: string; reason: string; from: string; to: string | null };
  expect(event).toMatchObject({ tid, reason: 'order', from });
  expect(event.to).not.toBe(from);

  const page = await browser.newPage();
  await page.goto(`${api.baseUrl}/dashboard`);
  await page.getByTestId('token-input').fill(ADMIN_TOKEN);
  await page.getByTestId('token-save').click();
  await page.locator(`[data-testid="job-row"][data-job-id="${id}"]`).getByTestId('job-open').click();
  const row = page.getByTestId('migrations-table').getByTestId('migration-row');
  await expect(row).toHaveCount(1);
  await expect(row).toHaveAttribute('data-tid', tid);
  await expect(row).toContainText('order');
  await expect(row).toContainText(from);
  await page.close();
});
