import type { CommandDefinition } from '../define.js';
import { buildCommand } from './build.js';
import { lsCommand } from './ls.js';
import { inspectCommand } from './inspect.js';
import { tagCommand } from './tag.js';
import { rmCommand } from './rm.js';
import { pruneCommand } from './prune.js';
import { extractCommand } from './extract.js';
import { versionCommand } from './version.js';
import { pushCommand } from './push.js';
import { pullCommand } from './pull.js';
import { loginCommand } from './login.js';
import { logoutCommand } from './logout.js';
import { uploadCommand } from './upload.js';
import { attachCommand } from './attach.js';
import { fetchCommand } from './fetch.js';
import { indexCreateCommand } from './index-cmd.js';
import { modelfileGenerateCommand } from './modelfile.js';

/** The single ordered list of commands (help lists them in this order). */
export const COMMANDS: CommandDefinition[] = [
  buildCommand,
  pushCommand,
  uploadCommand,
  attachCommand,
  pullCommand,
  fetchCommand,
  extractCommand,
  inspectCommand,
  indexCreateCommand,
  lsCommand,
  tagCommand,
  rmCommand,
  pruneCommand,
  modelfileGenerateCommand,
  loginCommand,
  logoutCommand,
  versionCommand,
];
