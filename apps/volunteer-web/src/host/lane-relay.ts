/** What the page asks its lane relay worker (lane-relay-worker.ts). */
export type RelayRequest = { type: 'carry'; id: number; channel: RTCDataChannel; port: MessagePort } | { type: 'close'; ids: number[] };

/**
 * Lanes for task workers in sandbox frames. A lane's RTCDataChannel cannot cross into a frame's
 * opaque origin, so it goes, as it is created, to a worker of the page's own, which pipes it to
 * the task's worker over a MessagePort: worker to worker, the page's main thread out of the path.
 */
export class LaneRelay {
  #worker: Worker;
  #nextId = 0;
  /** Lanes not closed yet, by the group (a task worker) they were carried for. */
  #open = new Map<number, Set<number>>();

  constructor(worker: Worker = new Worker(new URL('./lane-relay-worker.ts', import.meta.url), { type: 'module' })) {
    this.#worker = worker;
    this.#worker.onmessage = ({ data }: MessageEvent<number>) => {
      for (const ids of this.#open.values()) ids.delete(data);
    };
  }

  /** Takes `channel` (at once, as it must be transferred) for the worker `group`; its port goes to that worker. */
  carry(group: number, channel: RTCDataChannel): MessagePort {
    const { port1, port2 } = new MessageChannel();
    const id = this.#nextId++;
    const ids = this.#open.get(group) ?? new Set();
    ids.add(id);
    this.#open.set(group, ids);
    this.#worker.postMessage({ type: 'carry', id, channel, port: port2 } satisfies RelayRequest, [channel as unknown as Transferable, port2]);
    return port1;
  }

  /** The worker `group` is gone: so are its lanes (as a channel in a terminated worker closes). */
  closeGroup(group: number): void {
    const ids = this.#open.get(group);
    this.#open.delete(group);
    if (ids?.size) this.#worker.postMessage({ type: 'close', ids: [...ids] } satisfies RelayRequest);
  }
}
