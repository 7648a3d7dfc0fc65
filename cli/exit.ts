/** Exit codes of every paramtrail command, which scripts can rely on. */
export const EXIT = {
  /** Done; for run, every run completed. */
  ok: 0,
  /** A run or check failed, or the named thing does not exist. */
  failed: 1,
  /** The command line was wrong, or a setting in the environment is invalid. */
  usage: 2,
  /** The experiment file is invalid; nothing was started. */
  invalid: 3,
  /**
   * The Temporal server or the store could not be reached (worth a retry), or the store refused access
   * (its credentials or bucket need fixing first); the message names which.
   */
  unreachable: 4,
} as const;
