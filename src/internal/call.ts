/**
 * Calls user code (a factory hook) and always returns a promise: a synchronous throw becomes a
 * rejection, so no factory can break the pool's bookkeeping by throwing instead of rejecting.
 */
export function settle<R>(fn: () => R | PromiseLike<R>): Promise<R> {
  return new Promise<R>((resolve) => {
    resolve(fn());
  });
}
