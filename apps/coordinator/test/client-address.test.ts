import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { clientAddress } from '../src/client-address.ts';

const request = (remoteAddress: string, forwarded?: string | string[]) => ({ socket: { remoteAddress }, headers: forwarded === undefined ? {} : { 'x-forwarded-for': forwarded } }) as unknown as IncomingMessage;

describe('clientAddress', () => {
  it('is the socket’s peer unless a proxy is trusted: a client’s own X-Forwarded-For is not', () => {
    expect(clientAddress(request('203.0.113.9', '10.0.0.1'), false)).toBe('203.0.113.9');
  });

  it('behind a trusted proxy, is the address the proxy saw, the last one it appended', () => {
    expect(clientAddress(request('127.0.0.1', '10.0.0.1, 198.51.100.7'), true)).toBe('198.51.100.7');
    expect(clientAddress(request('127.0.0.1', ['10.0.0.1', '198.51.100.8']), true)).toBe('198.51.100.8');
    // a proxy that sent none: the peer it is
    expect(clientAddress(request('127.0.0.1'), true)).toBe('127.0.0.1');
  });
});
