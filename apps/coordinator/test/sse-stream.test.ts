import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { SseStream } from '../src/sse-stream.ts';
import { openSse } from './support/sse-client.ts';

async function serve(onStream: (stream: SseStream) => void) {
  const server = createServer((_request, response) => onStream(new SseStream(response, 20)));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, close: () => server.close() };
}

describe('SseStream', () => {
  it('frames events, keeps an idle stream alive with comments, and ends', async () => {
    let stream: SseStream | null = null;
    const server = await serve((s) => {
      stream = s;
      s.send(7, 'migration', { id: 7, text: 'two\nlines' });
    });
    const client = await openSse(server.url, {});
    expect(client.response.headers.get('cache-control')).toBe('no-cache');
    expect(await client.frames(3)).toEqual(['id: 7\nevent: migration\ndata: {"id":7,"text":"two\\nlines"}', ': ping', ': ping']);
    stream!.end();
    await client.ended();
    server.close();
  });

  it('tells when the client has gone away, and stays quiet after', async () => {
    let gone: (stream: SseStream) => void = () => undefined;
    const closed = new Promise<SseStream>((resolve) => (gone = resolve));
    const server = await serve((s) => s.onClose(() => gone(s)));
    const client = await openSse(server.url, {});
    client.abort();
    const stream = await closed;
    expect(() => stream.send(1, 'migration', {})).not.toThrow();
    stream.end();
    server.close();
  });
});
