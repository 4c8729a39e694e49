// The UTF-8 codecs every runtime of ours has (browsers, workers, Node), without pulling in DOM or Node types.
declare class TextEncoder {
  encode(input?: string): Uint8Array;
}
declare class TextDecoder {
  decode(input?: Uint8Array): string;
}
