import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';

/* The settings of a coordinator on PostgreSQL (docs/cluster.md): a typo stops the start with a clear message. */
describe('cluster settings', () => {
  it('take a PostgreSQL URL, a public URL and a lease, with their defaults', () => {
    expect(loadConfig({})).toMatchObject({ databaseUrl: null, publicUrl: null, jobLeaseMs: 10_000 });
    expect(loadConfig({ DATABASE_URL: 'postgres://webpvm@127.0.0.1:5432/grid', WEBPVM_PUBLIC_URL: 'https://a.example.org/ignored/path', WEBPVM_JOB_LEASE_MS: '3000' })).toMatchObject({
      databaseUrl: 'postgres://webpvm@127.0.0.1:5432/grid',
      publicUrl: 'https://a.example.org',
      jobLeaseMs: 3000,
    });
  });

  it('refuse what is not one, with E_BAD_REQUEST naming the setting', () => {
    expect(() => loadConfig({ DATABASE_URL: 'mysql://x@y/z' })).toThrow(expect.objectContaining({ code: 'E_BAD_REQUEST', message: expect.stringContaining('DATABASE_URL') }));
    expect(() => loadConfig({ DATABASE_URL: 'not a url' })).toThrow(expect.objectContaining({ code: 'E_BAD_REQUEST' }));
    expect(() => loadConfig({ WEBPVM_PUBLIC_URL: 'ftp://a' })).toThrow(expect.objectContaining({ message: expect.stringContaining('WEBPVM_PUBLIC_URL') }));
    expect(() => loadConfig({ WEBPVM_JOB_LEASE_MS: '200' })).toThrow(expect.objectContaining({ message: expect.stringContaining('at least 1000') }));
  });
});
