import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PrismaPg } from '@prisma/adapter-pg';
import { Pool, type PgDropInLeak } from '../../src/adapters/pg.js';
import { SERVICES, requireService } from '../support/services.js';
import { callerLocation, pointsAt } from '../support/site.js';

const service = await requireService('postgres');
const { host, port, user, database } = SERVICES.postgres;
const base = { host, port, user, database };

describe('lifeguard/pg Pool under Prisma\'s driver adapter (@prisma/adapter-pg)', { skip: service.skip }, () => {
  it('is taken as the external pool (its instanceof pg.Pool check), runs queries and a transaction, and a transaction never ended is named by its line', async () => {
    const pool = new Pool({ ...base, max: 2, lifeguard: { leakDetection: 'full', leakWarnAfterMs: 150 } });
    const factory = new PrismaPg(pool);
    const adapter = await factory.connect();
    try {
      // Not instanceof pg.Pool, the factory would have made a plain pg.Pool of its own from the options.
      assert.equal(adapter.underlyingDriver(), pool);
      const result = await adapter.queryRaw({ sql: 'SELECT $1::int + 1 AS n', args: [41], argTypes: [{ scalarType: 'int', arity: 'scalar' }] });
      assert.deepEqual(result.columnNames, ['n']);
      assert.deepEqual(result.rows, [[42]]);
      const tx = await adapter.startTransaction();
      assert.equal(await tx.executeRaw({ sql: 'SELECT 1', args: [], argTypes: [] }), 1);
      await tx.commit();

      const leak = new Promise<PgDropInLeak>((resolve) => { pool.on('leak', resolve); });
      let where = '';
      async function handler(): Promise<void> {
        where = callerLocation(1); const forgotten = await adapter.startTransaction();
        await forgotten.executeRaw({ sql: 'SELECT 1', args: [], argTypes: [] });
      }
      await handler();
      const report = await leak;
      assert.ok(pointsAt(report.appSite, where), `leak site ${String(report.appSite)} should point at ${where}`);
    } finally {
      await adapter.dispose();
      await pool.end();
    }
  });
});
