import type { CommandDefinition } from '../define.js';
import { VERSION } from '../version.js';

export const versionCommand: CommandDefinition = {
  name: 'version',
  summary: 'print version information',
  configure() {},
  async run() {
    const info = { Version: VERSION, Platform: `${process.platform}/${process.arch}`, Node: process.version };
    return { json: info, text: `Version:  ${info.Version}\nPlatform: ${info.Platform}\nNode:     ${info.Node}` };
  },
};
