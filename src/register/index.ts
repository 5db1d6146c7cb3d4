/**
 * `lifeguard/register`: `node --import lifeguard/register app.js` attaches Lifeguard's leak detection to an
 * unmodified application (pg.Pool, mysql2 pools, http/https agents, fetch), configured by environment
 * variables (docs/find-a-leak.md). Importing it attaches; `attach()` and `optionsFromEnv()` are exported
 * for programmatic use.
 */
import { attachFromEnv } from './attach.js';

export { attach, attachFromEnv, optionsFromEnv, type AttachClient, type AttachOptions, type Attached } from './attach.js';

await attachFromEnv();
