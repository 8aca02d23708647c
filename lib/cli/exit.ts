/** Exit codes, kept stable for scripts and systemd: see README "Exit codes". */
export const EXIT = {
  ok: 0,
  /** a runtime failure; for `show`, a pk this cluster does not track */
  failure: 1,
  usage: 2,
  /** `show`: a pk the cluster tracks but has no sample of yet */
  noData: 3,
} as const;
