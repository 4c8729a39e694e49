import type { ServerResponse } from 'node:http';

/** Proxies and load balancers close a connection silent for a minute or so; a comment every 15 s keeps it. */
export const SSE_HEARTBEAT_MS = 15_000;

/** One `text/event-stream` response, written straight to the socket: Fastify has handed it over. */
export class SseStream {
  private readonly heartbeat: NodeJS.Timeout;

  constructor(
    private readonly res: ServerResponse,
    heartbeatMs = SSE_HEARTBEAT_MS,
  ) {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      // nginx would otherwise hold events back until its buffer fills
      'x-accel-buffering': 'no',
    });
    res.flushHeaders();
    this.heartbeat = setInterval(() => this.write(': ping\n\n'), heartbeatMs);
    res.once('close', () => clearInterval(this.heartbeat));
  }

  /** `data` goes as one line of JSON, which never holds a raw newline. */
  send(id: number, event: string, data: unknown): void {
    this.write(`id: ${id}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  /** Runs once the response is over: ended here, or the client went away. */
  onClose(callback: () => void): void {
    if (this.res.closed) callback();
    else this.res.once('close', callback);
  }

  end(): void {
    clearInterval(this.heartbeat);
    if (!this.res.writableEnded) this.res.end();
  }

  private write(text: string): void {
    if (!this.res.writableEnded && !this.res.destroyed) this.res.write(text);
  }
}
