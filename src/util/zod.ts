/** English messages for zod/mini's issues (it loads no locale by default); imported by every module with a schema. */
import { config } from 'zod/mini';
import en from 'zod/v4/locales/en.js';

config(en());
