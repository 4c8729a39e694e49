import { runTaskWorker, type WorkerScope } from '@webpvm/task-sdk/runtime';
import { SandboxBoot, type WorkerToFrame } from '@webpvm/vm-protocol';

/**
 * A task worker in a job's sandbox frame (frame.ts): a classic worker from a blob: URL, whose
 * origin is the frame's opaque one. Its frame hands it, once, the port it speaks to the host page
 * on, the job's program as text, and its safe-point cells, and later the ends of its lanes; the
 * program is imported from a blob: URL made here, the one kind of script the frame's policy lets
 * it load.
 */
export function bootTaskWorker(): void {
  // Task code starts no workers and loads no scripts of its own: a nested worker would outlive its
  // task's slot, escape freezing and migration and multiply the tab's threads. Nor does it end its
  // worker without a word (`close`), which would leave its task running for ever as far as the
  // page knows. These go before any program loads; nothing else holds them. Some live on the
  // scope's prototype. A worker where one is left runs nothing at all.
  for (const name of ['Worker', 'SharedWorker', 'importScripts', 'close']) {
    for (let scope: object | null = self; scope; scope = Object.getPrototypeOf(scope)) Reflect.deleteProperty(scope, name);
    if (name in self) throw new Error(`the task worker cannot take ${name} away from task code`);
  }
  // The worker's own postMessage, to its frame; taken before task code can replace it.
  const worker = self as unknown as { postMessage(message: WorkerToFrame, transfer: Transferable[]): void };
  const toFrame = worker.postMessage.bind(worker);

  const boot = (event: MessageEvent): void => {
    const parsed = SandboxBoot.safeParse(event.data);
    if (!parsed.success) return;
    self.removeEventListener('message', boot);
    const { programUrl, source, flags } = parsed.data;
    // The schema checked that it is a MessagePort.
    const port = parsed.data.port as unknown as MessagePort;
    const frozen = (message: unknown, transfer: ArrayBuffer[]): void => toFrame({ type: 'frozen', port, message, transfer }, [port, ...transfer]);
    runTaskWorker(pageScope(port, frozen), {
      flags,
      importProgram: async (url) => {
        if (url !== programUrl) throw new Error(`this sandbox holds the program ${programUrl}, not ${url}`);
        const blob = URL.createObjectURL(new Blob([source], { type: 'text/javascript' }));
        return import(/* @vite-ignore */ blob) as Promise<Record<string, unknown>>;
      },
    });
  };
  self.addEventListener('message', boot);
}

/**
 * The host page's end of the worker, and the lanes the frame hands over (frame-links.ts): a data
 * channel can be transferred only from where it is made, so lanes come from the frame, not the page.
 */
function pageScope(port: MessagePort, frozen: WorkerScope['frozen']): WorkerScope {
  return {
    frozen,
    postMessage: (message, transfer = []) => port.postMessage(message, transfer),
    addEventListener: (_type, listener) => {
      port.addEventListener('message', ({ data }) => listener({ data }));
      port.start();
      self.addEventListener('message', ({ data }: MessageEvent) => {
        const type = (data as { type?: unknown } | null)?.type;
        if (type === 'lane-out' || type === 'lane-in') listener({ data });
      });
    },
  };
}
