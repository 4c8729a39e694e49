import type { HostMessage } from '@webpvm/vm-protocol';
import type { SocketLike } from '../../src/host/coordinator-link.ts';

export class FakeSocket implements SocketLike {
  onopen: SocketLike['onopen'] = null;
  onmessage: SocketLike['onmessage'] = null;
  onclose: SocketLike['onclose'] = null;
  onerror: SocketLike['onerror'] = null;
  sent: HostMessage[] = [];
  closed = false;

  send(text: string): void {
    if (this.closed) throw new Error('socket closed');
    this.sent.push(JSON.parse(text) as HostMessage);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.onclose?.({} as CloseEvent);
  }

  open(): void {
    this.onopen?.({} as Event);
  }

  receive(message: unknown): void {
    this.onmessage?.({ data: JSON.stringify(message) } as MessageEvent);
  }

  sentOfType<T extends HostMessage['type']>(type: T): Extract<HostMessage, { type: T }>[] {
    return this.sent.filter((m): m is Extract<HostMessage, { type: T }> => m.type === type);
  }
}
