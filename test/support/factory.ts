import type { CreateContext, Factory } from '../../src/pool/options.js';

export interface TestResource {
  readonly id: number;
  destroyed: boolean;
  context: CreateContext;
}

interface Deferred<T> {
  resolve(value: T): void;
  reject(error: unknown): void;
}

/**
 * A factory whose behaviour a test scripts: immediate or manual creation, failures, validation and reset
 * results. It records every call so tests can check that each resource is destroyed exactly once.
 */
export class TestFactory implements Factory<TestResource> {
  readonly created: TestResource[] = [];
  readonly destroyed: TestResource[] = [];
  readonly resets: TestResource[] = [];
  readonly validated: TestResource[] = [];
  createCalls = 0;
  /** Number of upcoming creates that reject. */
  failCreates = 0;
  createError: Error = new Error('connect ECONNREFUSED 127.0.0.1:5432');
  /** When true, creates wait until `resolveCreate()`/`rejectCreate()`. */
  manual = false;
  readonly #pending: Deferred<TestResource>[] = [];
  /** Result of validate: a boolean, 'throw', or 'hang'. */
  validateResult: boolean | 'throw' | 'hang' = true;
  resetResult: 'ok' | 'throw' = 'ok';
  destroyHangs = false;
  #id = 0;

  get pendingCreates(): number {
    return this.#pending.length;
  }

  get live(): TestResource[] {
    return this.created.filter((r) => !r.destroyed);
  }

  create = (context: CreateContext): Promise<TestResource> => {
    this.createCalls++;
    if (this.failCreates > 0) {
      this.failCreates--;
      return Promise.reject(this.createError);
    }
    const make = (): TestResource => {
      const resource: TestResource = { id: ++this.#id, destroyed: false, context };
      this.created.push(resource);
      return resource;
    };
    if (!this.manual) return Promise.resolve(make());
    return new Promise<TestResource>((resolve, reject) => {
      this.#pending.push({ resolve: () => { resolve(make()); }, reject });
    });
  };

  resolveCreate(): void {
    const d = this.#pending.shift();
    if (d === undefined) throw new Error('no pending create');
    d.resolve(undefined as unknown as TestResource);
  }

  rejectCreate(error: unknown = this.createError): void {
    const d = this.#pending.shift();
    if (d === undefined) throw new Error('no pending create');
    d.reject(error);
  }

  destroy = (resource: TestResource): Promise<void> => {
    if (resource.destroyed) throw new Error(`resource ${resource.id} destroyed twice`);
    resource.destroyed = true;
    this.destroyed.push(resource);
    return this.destroyHangs ? new Promise(() => undefined) : Promise.resolve();
  };

  validate = (resource: TestResource): Promise<boolean> => {
    this.validated.push(resource);
    if (this.validateResult === 'throw') return Promise.reject(new Error('validation query failed'));
    if (this.validateResult === 'hang') return new Promise(() => undefined);
    return Promise.resolve(this.validateResult);
  };

  reset = (resource: TestResource): Promise<void> => {
    this.resets.push(resource);
    return this.resetResult === 'throw' ? Promise.reject(new Error('ROLLBACK failed')) : Promise.resolve();
  };

  /** create, destroy and validate. */
  withValidate(): Factory<TestResource> {
    return { create: this.create, destroy: this.destroy, validate: this.validate };
  }

  /** Every hook: create, destroy, validate and reset. */
  all(): Factory<TestResource> {
    return { create: this.create, destroy: this.destroy, validate: this.validate, reset: this.reset };
  }

  /** The factory without optional hooks (validate/reset), as most pools use it. */
  basic(): Factory<TestResource> {
    return { create: this.create, destroy: this.destroy };
  }
}
