import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import '../styles.css';
import { coordinatorSocketUrl } from './coordinator-link.ts';
import { parseHostOptions } from './host-options.ts';
import { HostRuntime, type HostSnapshot } from './host-runtime.ts';
import { claimLane, laneDatabase } from './host-lane.ts';
import { HostView } from './HostView.tsx';
import { idbStore } from './kv-store.ts';
import { createPeerJsPeer } from './messaging/peerjs-peer.ts';
import { spawnTaskWorker } from './task-worker-handle.ts';

declare global {
  /** Read by e2e tests and benchmarks to see what this host is doing. */
  var __webpvmHost: { snapshot(): HostSnapshot } | undefined;
}

const runtime = new HostRuntime({
  options: parseHostOptions(location.search, navigator.hardwareConcurrency),
  store: idbStore(laneDatabase(await claimLane())),
  spawn: spawnTaskWorker,
  createPeer: createPeerJsPeer,
  url: coordinatorSocketUrl(location),
  userAgent: navigator.userAgent,
});
globalThis.__webpvmHost = { snapshot: () => runtime.snapshot() };
runtime.start().catch((error: unknown) => console.error('webpvm: the host could not start', error));

const root = document.getElementById('root');
if (!root) throw new Error('the page has no #root element');
createRoot(root).render(
  <StrictMode>
    <HostView runtime={runtime} />
  </StrictMode>,
);
