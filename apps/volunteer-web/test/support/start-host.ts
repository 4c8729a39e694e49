import { PROTOCOL_VERSION } from '@webpvm/vm-protocol';
import { HostRuntime } from '../../src/host/host-runtime.ts';
import type { CreatePeer } from '../../src/host/messaging/peer-network.ts';
import { FakeSocket } from './fake-socket.ts';
import { fakeLinkFrames } from './fake-link-frames.ts';
import { fakeWorkers } from './fake-workers.ts';
import { memoryStore } from './memory-store.ts';
import { settle } from './timing.ts';

export const welcome = {
  type: 'welcome',
  protocol: PROTOCOL_VERSION,
  hostId: 'h1',
  secret: 's1',
  volunteerId: 'v1',
  heartbeatMs: 1000,
  checkpointIntervalMs: 100,
  peerId: 'h1-peer',
  peerToken: 't1',
  boot: 'b1',
  iceServers: [],
  iceTransportPolicy: 'all',
};

const started: HostRuntime[] = [];

/** Stops every host started since the last call: an afterEach hook, so no timer of one test runs into the next. */
export function stopHosts(): void {
  for (const runtime of started.splice(0)) runtime.stop();
}

export async function startHost({ store = memoryStore(), p2p = true, createPeer }: { store?: ReturnType<typeof memoryStore>; p2p?: boolean; createPeer?: CreatePeer } = {}) {
  const sockets: FakeSocket[] = [];
  const { spawn, workers } = fakeWorkers();
  const frames = fakeLinkFrames();
  const runtime = new HostRuntime({
    options: { slots: 2, policy: 'always', p2p, idleMs: 1000, replayLog: true, senderLog: true, minBattery: 0 },
    store,
    spawn,
    links: frames,
    url: 'ws://coordinator/ws',
    userAgent: 'vitest',
    volunteerKey: 'vitest-volunteer-key-0123456789abcdef',
    createSocket: () => {
      const socket = new FakeSocket();
      sockets.push(socket);
      return socket;
    },
    ...(createPeer ? { createPeer } : {}),
  });
  started.push(runtime);
  await runtime.start();
  const socket = () => sockets.at(-1)!;
  /** Opens the current socket and welcomes the host; `boot` tells another coordinator process. */
  const connect = async (boot = welcome.boot) => {
    socket().open();
    socket().receive({ ...welcome, boot });
    await settle();
  };
  return { runtime, store, sockets, socket, workers, links: frames.links, connect };
}
