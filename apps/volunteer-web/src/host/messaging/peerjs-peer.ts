import { usableIceServers } from '@webpvm/vm-protocol';
import { Peer, type DataConnection } from 'peerjs';
import type { ConnectionLike } from './peer-channel.ts';
import type { CreatePeer } from './peer-network.ts';

/**
 * The real PeerJS peer, on the coordinator's own PeerServer: it is mounted at `/peerjs` on the
 * origin that served this page (its WebSocket is `/peerjs/peerjs`, key `peerjs`).
 */
export const createPeerJsPeer: CreatePeer = (peerId, peerToken, { iceServers, iceTransportPolicy }, events) => {
  const secure = location.protocol === 'https:';
  const peer = new Peer(peerId, {
    host: location.hostname,
    port: Number(location.port || (secure ? 443 : 80)),
    path: '/peerjs',
    secure,
    token: peerToken,
    config: { iceServers: usableIceServers(iceServers) as unknown as RTCIceServer[], iceTransportPolicy },
  });
  peer.on('connection', (conn) => events.connection(adapt(conn)));
  peer.on('error', (error) => events.error(error.type, error.message));
  return {
    connect: (remotePeerId) => {
      // `raw` hands our own frames to the RTCDataChannel as they are; `reliable` makes it ordered.
      const conn = peer.connect(remotePeerId, { serialization: 'raw', reliable: true });
      return conn ? adapt(conn) : null;
    },
    destroy: () => peer.destroy(),
  };
};

function adapt(conn: DataConnection): ConnectionLike {
  return {
    remotePeerId: conn.peer,
    serialization: conn.serialization,
    dataChannel: () => conn.dataChannel ?? null,
    listen: (events) => {
      conn.on('open', events.open);
      conn.on('close', events.close);
      conn.on('error', events.close);
      conn.on('data', events.data);
      conn.on('iceStateChanged', events.iceState);
    },
    // PeerJS still hands a just-announced connection the signals that came before it, right
    // after the `connection` event: closing at once would leave it without its negotiator.
    close: () => queueMicrotask(() => conn.close()),
  };
}
