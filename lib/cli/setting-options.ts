// The settings as flags of every subcommand: listed after the command's own flags, each with its
// environment variable and default (commander's Option.env() and a help group of their own).
import { Option, type Command } from 'commander';
import { SETTINGS, shownDefault, type SettingName } from '../ops/config.js';

export const SETTINGS_HEADING = 'Settings (a flag wins over its environment variable, which wins over .env):';

/** Adds every setting as `--flag <value>`; call it after the command's own options so they come first. */
export function addSettingOptions(cmd: Command): Command {
  for (const s of Object.values(SETTINGS)) {
    const shown = shownDefault(s);
    cmd.addOption(
      new Option(`--${s.flag} <value>`, s.help)
        .env(s.env)
        // only shown in the help: loadConfig() applies the defaults, so the precedence stays its own
        .default(shown, shown === '' ? '(empty)' : shown)
        .helpGroup(SETTINGS_HEADING),
    );
  }
  return cmd;
}

const SETTING_KEYS = new Set<string>(Object.keys(SETTINGS));

/**
 * The command's options as loadConfig() and the commands take them: its own options as parsed
 * (defaults included), a setting only when given on the command line, since loadConfig() reads
 * the environment and the defaults itself and names the variable in its errors.
 */
export function givenOptions(cmd: Command): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(cmd.opts())) {
    if (SETTING_KEYS.has(key as SettingName) && cmd.getOptionValueSource(key) !== 'cli') continue;
    out[key] = value;
  }
  return out;
}
