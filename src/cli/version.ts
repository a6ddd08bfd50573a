import { packageVersion } from '../util/package-root.js';

export const VERSION: string = packageVersion();
