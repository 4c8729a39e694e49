import { randomBytes } from 'node:crypto';
import { PROTOCOL_VERSION, type TaskOutcome, decodeCoordinatorMessage, encode } from '@webpvm/vm-protocol';
import WebSocket from 'ws';

/**
 * A host in Node speaking the real host protocol over a plain WebSocket: it computes `x * x`
 * for every task it is given and reports each batch of outcomes in one frame, as a tab would.
 */
export class SimulatedHost {
  private socket: WebSocket | null = null;
  completed = 0;

  constructor(
    private readonly wsUrl: string,
    private readonly slots: number,
  ) {}

  async connect(): Promise<void> {
    const socket = new WebSocket(this.wsUrl);
    this.socket = socket;
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.on('message', (data) => {
        const decoded = decodeCoordinatorMessage(data.toString());
        if (!decoded.ok) throw new Error(`bad frame from coordinator: ${decoded.error.message}`);
        const message = decoded.value;
        if (message.type === 'welcome') resolve();
        if (message.type === 'assign') {
          const items: TaskOutcome[] = message.tasks.map((t) => ({
            tid: t.tid,
            attempt: t.attempt,
            ok: true,
            value: (t.input as number) * (t.input as number),
          }));
          this.completed += items.length;
          socket.send(encode({ type: 'results', items }));
        }
        if (message.type === 'error') throw new Error(`coordinator error ${message.code}: ${message.message}`);
      });
      socket.once('open', () =>
        socket.send(
          encode({ type: 'hello', protocol: PROTOCOL_VERSION, identity: null, slots: this.slots, running: [], userAgent: 'bench', volunteer: randomBytes(32).toString('base64url') }),
        ),
      );
    });
  }

  close(): void {
    this.socket?.close();
  }
}
