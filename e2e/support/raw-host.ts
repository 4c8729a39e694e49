import { randomBytes } from 'node:crypto';
import { type CoordinatorMessage, type CoordinatorMessageOf, PROTOCOL_VERSION, type TaskAssignment, decodeCoordinatorMessage, encode } from '@webpvm/vm-protocol';
import WebSocket from 'ws';

/** What a hostile host does with the tasks it is given. */
export type Misbehaviour = 'hoard' | 'fail' | 'flap';

/**
 * A host that is not a browser: one raw WebSocket speaking the host protocol, as an attacker would
 * write it, with a volunteer key of its own. `hoard` keeps every task and only beats its heart;
 * `fail` answers every task with an error; `flap` drops its connection whenever it is given tasks,
 * and comes back at once under the same identity.
 */
export class RawHost {
  readonly assigned: TaskAssignment[] = [];
  readonly received: CoordinatorMessage[] = [];
  #socket: WebSocket | null = null;
  #identity: { hostId: string; secret: string } | null = null;
  #heart: NodeJS.Timeout | null = null;
  #stopped = false;
  readonly #volunteer = randomBytes(32).toString('base64url');

  private constructor(
    private readonly url: string,
    readonly misbehaviour: Misbehaviour,
    private readonly slots: number,
  ) {}

  /** The coordinator's last welcome: this host's id, and its PeerJS id and token. */
  get welcome(): CoordinatorMessageOf<'welcome'> | undefined {
    return this.received.findLast((m): m is CoordinatorMessageOf<'welcome'> => m.type === 'welcome');
  }

  static async connect(baseUrl: string, misbehaviour: Misbehaviour, slots = 4): Promise<RawHost> {
    const host = new RawHost(`${baseUrl.replace('http', 'ws')}/ws`, misbehaviour, slots);
    await host.#open();
    return host;
  }

  #open(): Promise<void> {
    const socket = new WebSocket(this.url);
    this.#socket = socket;
    return new Promise((resolve, reject) => {
      socket.once('error', reject);
      socket.once('open', () =>
        socket.send(encode({ type: 'hello', protocol: PROTOCOL_VERSION, identity: this.#identity, slots: this.slots, running: [], userAgent: `raw ${this.misbehaviour}`, volunteer: this.#volunteer })),
      );
      socket.on('message', (data, binary) => {
        if (binary) return;
        const decoded = decodeCoordinatorMessage(data.toString());
        if (!decoded.ok) return;
        const message = decoded.value;
        this.received.push(message);
        if (message.type === 'welcome') {
          this.#identity = { hostId: message.hostId, secret: message.secret };
          this.#heart ??= setInterval(() => this.#socket?.readyState === WebSocket.OPEN && this.#socket.send(encode({ type: 'heartbeat' })), message.heartbeatMs);
          resolve();
        }
        if (message.type === 'assign') this.#assigned(socket, message.tasks);
      });
      socket.once('close', () => {
        if (this.misbehaviour === 'flap' && !this.#stopped) void this.#open().catch(() => {});
      });
    });
  }

  #assigned(socket: WebSocket, tasks: TaskAssignment[]): void {
    this.assigned.push(...tasks);
    if (this.misbehaviour === 'fail') {
      const items = tasks.map((t) => ({ tid: t.tid, attempt: t.attempt, ok: false as const, error: { code: 'E_TASK_FAILED' as const, message: 'a lie' } }));
      socket.send(encode({ type: 'results', items }));
    }
    if (this.misbehaviour === 'flap') socket.close();
  }

  close(): void {
    this.#stopped = true;
    if (this.#heart) clearInterval(this.#heart);
    this.#socket?.close();
  }
}
