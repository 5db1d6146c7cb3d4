// Removes build output so that a deleted source or test file never survives as stale JavaScript.
import { rmSync } from 'node:fs';
rmSync(new URL('../dist', import.meta.url), { recursive: true, force: true });
