import net from 'node:net';

/**
 * A TCP proxy in front of the coordinator that can cut every connection through it at once, as a
 * volunteer's flaky network does: the pages and their task workers load from it and connect
 * through it (page socket, relay lanes), and see each cut as a dropped connection, with no close
 * handshake. Data channels between tabs do not go through it.
 */
export class CuttingProxy {
  readonly #server: net.Server;
  readonly #open = new Set<net.Socket>();
  #cuts = 0;

  private constructor(server: net.Server) {
    this.#server = server;
  }

  static async start(upstreamPort: number): Promise<CuttingProxy> {
    const server = net.createServer();
    const proxy = new CuttingProxy(server);
    server.on('connection', (client) => proxy.#pipe(client, upstreamPort));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    return proxy;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.#server.address() as net.AddressInfo).port}`;
  }

  /** How many times connections were cut. */
  get cuts(): number {
    return this.#cuts;
  }

  /** Resets every connection through the proxy, both ways. */
  cut(): void {
    this.#cuts += 1;
    for (const socket of this.#open) socket.resetAndDestroy();
    this.#open.clear();
  }

  async stop(): Promise<void> {
    this.cut();
    await new Promise((resolve) => this.#server.close(resolve));
  }

  #pipe(client: net.Socket, upstreamPort: number): void {
    const upstream = net.connect(upstreamPort, '127.0.0.1');
    for (const socket of [client, upstream]) {
      this.#open.add(socket);
      socket.on('close', () => this.#open.delete(socket));
      socket.on('error', () => undefined);
    }
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  }
}
