// The subset of hashring 3.2.0 (CommonJS, no bundled types) that lib/ring/ring.ts uses.
declare module 'hashring' {
  namespace HashRing {
    interface Options {
      /** Default vnodes per server; a server whose own vnode count equals it gets a weight-scaled count instead. */
      'vnode count'?: number;
      /** Points per vnode (4 bytes of the md5 each); default 4 (ketama). */
      replicas?: number;
      compatibility?: 'hash_ring' | 'ketama';
      'max cache size'?: number;
      'default port'?: number;
    }
    /** One point of the continuum: its 32-bit value and the server string that owns it. */
    interface Point {
      value: number;
      server: string;
    }
    type Servers = string | string[] | Record<string, number | { weight?: number; vnodes?: number }>;
  }

  class HashRing {
    /** algorithm: a crypto hash name, or a function returning the digest bytes of a key. */
    constructor(
      servers?: HashRing.Servers,
      algorithm?: string | ((key: string) => Uint8Array),
      options?: HashRing.Options,
    );
    /** The continuum, sorted by value ascending (stable: ties keep server insertion order). */
    ring: HashRing.Point[];
    size: number;
    replicas: number;
    /** Owner of a key: the first point whose value is >= hashValue(key), wrapping to point 0. */
    get(key: string): string | undefined;
    /** Index into `ring` of the first point whose value is >= hashValue, or 0 past the end. */
    find(hashValue: number): number;
    /** First 4 bytes of md5(key), little-endian, as an unsigned 32-bit integer. */
    hashValue(key: string): number;
    has(server: string): boolean;
    end(): this;
  }

  export = HashRing;
}
