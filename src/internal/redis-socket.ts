/** The socket under an ioredis connection, for the ioredis adapter and the Redis budget. */
import { Socket } from 'node:net';
import type { Redis } from 'ioredis';

/**
 * The socket under an ioredis connection, or null (none yet, or a stream that is not a socket). Both the
 * ioredis adapter and the Redis budget need it for the same reason: ioredis's disconnect() only
 * half-closes (end()), and a connection whose peer keeps its side open, or one caught in its ready check
 * while reconnecting, then stays open until its socket is destroyed.
 */
export function socketOf(redis: Redis): Socket | null {
  const stream = redis.stream as unknown;
  return stream instanceof Socket ? stream : null;
}
