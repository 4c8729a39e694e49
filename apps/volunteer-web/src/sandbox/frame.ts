import { FromSandbox, LIMITS, MAX_HANDED, ToSandbox, type SandboxBoot, type SandboxPort } from '@webpvm/vm-protocol';
import { FrameLinks } from './frame-links.ts';

/**
 * The main thread of a job's sandbox frame (docs/sandbox.md): an opaque origin with no storage,
 * which starts, flags and stops the job's task workers as its host page asks, and holds the job's
 * links to other hosts' frames, whose lanes it hands to the workers. It runs no task code itself. `source` is this very script: each worker is started from it (task-worker.ts).
 */
export function runFrame(source: string): void {
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
    // No onmessage: what task code posts to its own global scope lands here unheard.
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
