import fs from 'node:fs';
import path from 'node:path';
import { type CliRun, repoRoot, webpvm } from '../support/cli.ts';
import { ADMIN_TOKEN } from '../support/coordinator.ts';
import { expect, test as base } from '../support/fixtures.ts';
import { type VisibleBrowser, launchVisibleBrowser } from '../support/visible-browser.ts';
import { openVisibleHosts } from '../support/visible-hosts.ts';

const test = base.extend<{ visible: VisibleBrowser }>({
  visible: async ({}, use) => {
    const browser = await launchVisibleBrowser();
    await use(browser);
    await browser.close();
  },
});

const mainOf = (file: string): string[] => ['--main', fs.readFileSync(path.join(repoRoot, 'examples/inputs', file), 'utf8')];

/**
 * Every example with the inputs its README gives, and what of its result is the program's own:
 * pingpong's timings are the machine's, not the program's, so only its rows' sizes and counts
 * are compared.
 */
const EXAMPLES: Record<string, { args: string[]; comparable?: (results: unknown[]) => unknown }> = {
  'pi.ts': { args: ['--inputs', 'examples/inputs/pi-60.json'] },
  'primes.ts': { args: ['--inputs', 'examples/inputs/primes-10.json'] },
  'token-ring.ts': { args: mainOf('token-ring.json') },
  'jacobi.ts': { args: mainOf('jacobi.json') },
  'pingpong.ts': {
    args: mainOf('pingpong.json'),
    comparable: (results) => (results as { bytes: number; roundTrips: number }[][]).map((rows) => rows.map(({ bytes, roundTrips }) => ({ bytes, roundTrips }))),
  },
};

/** A job's seed other than the default: both runs must pass it on for their results to agree. */
const SEED = '7';

function resultsOf(run: CliRun): unknown[] {
  expect(run.code, run.stderr).toBe(0);
  return (JSON.parse(run.stdout) as { results: unknown[] }).results;
}

test('every example gives the same results under `webpvm run-local` and on hidden tabs of the grid', async ({ visible, api }) => {
  test.setTimeout(300_000);
  const examples = fs.readdirSync(path.join(repoRoot, 'examples')).filter((file) => file.endsWith('.ts'));
  // An example added without a line here would go unchecked.
  expect(examples.sort()).toEqual(Object.keys(EXAMPLES).sort());
  // As volunteers leave them: hidden, computing only while hidden, their page timers throttled.
  await openVisibleHosts(visible, api.baseUrl, 3, 'slots=1&policy=hidden');
  const env = { WEBPVM_URL: api.baseUrl, WEBPVM_TOKEN: ADMIN_TOKEN };

  for (const [file, { args, comparable = (results: unknown[]) => results }] of Object.entries(EXAMPLES)) {
    const program = `examples/${file}`;
    const local = resultsOf(await webpvm(['run-local', program, ...args, '--seed', SEED], env));
    const grid = resultsOf(await webpvm(['submit', program, ...args, '--seed', SEED, '--wait'], env));
    expect(comparable(grid), file).toEqual(comparable(local));
  }

  // The seed reached the tasks: π's samples are drawn with ctx.random.
  const withDefaultSeed = resultsOf(await webpvm(['run-local', 'examples/pi.ts', ...EXAMPLES['pi.ts']!.args], env));
  const withSeven = resultsOf(await webpvm(['run-local', 'examples/pi.ts', ...EXAMPLES['pi.ts']!.args, '--seed', SEED], env));
  expect(withSeven).not.toEqual(withDefaultSeed);
});
