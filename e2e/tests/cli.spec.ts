import { webpvm } from '../support/cli.ts';
import { ADMIN_TOKEN } from '../support/coordinator.ts';
import { expect, test } from '../support/fixtures.ts';
import { openHosts } from '../support/hosts.ts';

test('a researcher submits from the CLI, waits for the results, and manages tokens', async ({ browser, api }) => {
  await openHosts(browser, api.baseUrl, 2, 2);
  const env = { WEBPVM_URL: api.baseUrl, WEBPVM_TOKEN: ADMIN_TOKEN };

  const submitted = await webpvm(['submit', 'examples/primes.ts', '--inputs', 'examples/inputs/primes-10.json', '--wait'], env);
  expect(submitted.code, submitted.stderr).toBe(0);
  const { results } = JSON.parse(submitted.stdout) as { results: { count: number }[] };
  expect(results).toHaveLength(10);
  expect(results.reduce((sum, r) => sum + r.count, 0)).toBe(78_498);

  const status = await webpvm(['status'], env);
  expect(status.stdout).toMatch(/primes\s+done\s+10\/10/);

  const created = await webpvm(['token', 'create', '--name', 'bob'], env);
  expect(created.code, created.stderr).toBe(0);
  const bob = created.stdout.trim();
  expect(bob).toMatch(/^wpvm_\S+$/);
  // bob's token works, and sees none of the admin's jobs
  const bobStatus = await webpvm(['status', '--json'], { ...env, WEBPVM_TOKEN: bob });
  expect(JSON.parse(bobStatus.stdout)).toEqual({ jobs: [] });
  // and cannot create tokens like itself, only read tokens for its own jobs
  const refused = await webpvm(['token', 'create'], { ...env, WEBPVM_TOKEN: bob });
  expect(refused.code).toBe(1);
  expect(refused.stderr).toContain('E_FORBIDDEN');
  const reader = await webpvm(['token', 'create', '--name', 'bob-reader', '--scope', 'read', '--expires-in-days', '7'], { ...env, WEBPVM_TOKEN: bob });
  expect(reader.code, reader.stderr).toBe(0);
  expect(reader.stderr).toMatch(/\(read, until \d{4}-/);
  const listed = await webpvm(['token', 'list', '--json'], { ...env, WEBPVM_TOKEN: bob });
  const { tokens } = JSON.parse(listed.stdout) as { tokens: { id: string; name: string; scope: string }[] };
  expect(tokens.map((t) => [t.name, t.scope])).toEqual([
    ['bob-reader', 'read'],
    ['bob', 'submit'],
  ]);
  const revoked = await webpvm(['token', 'revoke', tokens[0]!.id], { ...env, WEBPVM_TOKEN: bob });
  expect(revoked.code, revoked.stderr).toBe(0);
  const afterRevoke = await webpvm(['status'], { ...env, WEBPVM_TOKEN: reader.stdout.trim() });
  expect(afterRevoke.code).toBe(1);
  expect(afterRevoke.stderr).toContain('revoked');
  // the admin's table lists every token
  const table = await webpvm(['token', 'list'], env);
  expect(table.stdout).toMatch(/bob-reader\s+read/);
});

test('the CLI explains bad input and a wrong token without a stack trace', async ({ api }) => {
  const env = { WEBPVM_URL: api.baseUrl, WEBPVM_TOKEN: ADMIN_TOKEN };
  const missing = await webpvm(['submit', 'examples/pi.ts', '--inputs', 'no/such/file.json'], env);
  expect(missing.code).toBe(2);
  expect(missing.stderr).toMatch(/^webpvm: .*no\/such\/file\.json.*\(E_BAD_REQUEST\)\n$/);

  const wrongToken = await webpvm(['status'], { ...env, WEBPVM_TOKEN: 'wpvm_wrong' });
  expect(wrongToken.code).toBe(1);
  expect(wrongToken.stderr).toContain('E_UNAUTHORIZED');
  expect(wrongToken.stderr).not.toContain('    at ');
});
