import { FromSandbox, LIMITS, MAX_HANDED, ToSandbox, WorkerToFrame, type SandboxBoot, type SandboxPort } from '@webpvm/vm-protocol';
import { FrameLinks } from './frame-links.ts';

/**
 * The main thread of a job's sandbox frame (docs/sandbox.md): an opaque origin with no storage,
 * which starts, flags and stops the job's task workers as its host page asks, and holds the job's
 * links to other hosts' frames, whose lanes it hands to the workers. It runs no task code itself.
 * `source` is this very script: each worker is started from it (task-worker.ts).
 */
export function runFrame(source: string): void {
  // A macrotask that a hidden page's timer throttling does not delay, as setTimeout would be.
  const later: (() => void)[] = [];
  const tick = new MessageChannel();
  tick.port1.onmessage = () => later.shift()?.();
  const nextTask = (run: () => void): void => {
    later.push(run);
    tick.port2.postMessage(null);
  };
  const workerUrl = URL.createObjectURL(new Blob([source], { type: 'text/javascript' }));
  // The frame's own SharedArrayBuffers: none can cross from the page into this agent cluster.
  const isolated = globalThis.crossOriginIsolated === true;
  const workers = new Map<number, { worker: Worker; cells: Int32Array | null }>();
  let program: { url: string; source: string } | null = null;
  const toPage = (message: FromSandbox): void => window.parent.postMessage(message, '*');
  const links = new FrameLinks(toPage);

  const spawn = (id: number, port: SandboxPort): void => {
    if (!program) {
      toPage({ type: 'worker-error', id, message: 'the sandbox was asked for a worker before it had the program' });
      return;
    }
    let worker: Worker;
    try {
      worker = new Worker(workerUrl, { name: `webpvm task worker ${id}` });
    } catch (error) {
      toPage({ type: 'worker-error', id, message: `the task worker could not start: ${String(error)}`.slice(0, LIMITS.logLineChars) });
      return;
    }
    // The one thing a worker tells its frame: its task froze, so it ends now and its state goes on
    // from here. Task code may say it too, and then only ends its own worker, which the page
    // counts against its task.
    worker.onmessage = ({ data }) => {
      const frozen = WorkerToFrame.safeParse(data);
      if (!frozen.success || workers.get(id)?.worker !== worker) return;
      worker.terminate();
      workers.delete(id);
      toPage({ type: 'worker-stopped', id, at: performance.timeOrigin + performance.now() });
      // The state goes in a task of its own: copying a large one to the page's process takes this
      // thread tens of milliseconds, and the notice above would only leave once it is over.
      const { port, message, transfer } = frozen.data;
      nextTask(() => {
        try {
          port.postMessage(message, transfer);
        } finally {
          port.close();
        }
      });
    };
    worker.onerror = (event) => {
      event.preventDefault();
      toPage({ type: 'worker-error', id, message: (event.message || 'the task worker failed').slice(0, LIMITS.logLineChars) });
    };
    const flags = isolated ? new SharedArrayBuffer(4 * MAX_HANDED) : null;
    workers.set(id, { worker, cells: flags && new Int32Array(flags) });
    const boot: SandboxBoot = { type: 'boot', port, programUrl: program.url, source: program.source, flags };
    worker.postMessage(boot, [port as unknown as Transferable]);
  };

  window.addEventListener('message', (event) => {
    if (event.source !== window.parent) return;
    const parsed = ToSandbox.safeParse(event.data);
    if (!parsed.success) return;
    const message = parsed.data;
    switch (message.type) {
      case 'program':
        program = { url: message.url, source: message.source };
        return;
      case 'spawn':
        spawn(message.id, message.port);
        return;
      case 'terminate':
        workers.get(message.id)?.worker.terminate();
        workers.delete(message.id);
        return;
      case 'ping':
        toPage({ type: 'pong' });
        return;
      case 'flags':
        for (const change of message.items) {
          const cells = workers.get(change.id)?.cells;
          if (!cells) continue;
          if (change.op === 'or') Atomics.or(cells, change.cell, change.bits);
          else Atomics.store(cells, change.cell, change.bits);
        }
        return;
      case 'link':
        links.open(message.link, message.offer, message.ice);
        return;
      case 'signal':
        links.signal(message.link, message.signal);
        return;
      case 'unlink':
        links.close(message.link);
        return;
      case 'lane':
        links.lane(message.link, message.stream, workers.get(message.id)?.worker, message.gift);
        return;
    }
  });
  toPage({ type: 'ready', isolated });
}
