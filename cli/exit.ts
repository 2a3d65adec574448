/**
 * The commands' exit statuses (the CLI contract), in a module of their own: `cli/main.ts` maps errors to them
 * before it has loaded any command's dependencies.
 */

/** `tollgate evaluate`: the outcome is scriptable without parsing output. */
export const EXIT = { APPROVE: 0, INPUT_ERROR: 1, REJECT: 2, ESCALATE: 3 } as const;

/** `tollgate simulate` and `tollgate demo`. */
export const SIMULATE_EXIT = { OK: 0, INPUT_ERROR: 1, EXPECTATIONS_UNMET: 4 } as const;

/** `tollgate audit`. */
export const AUDIT_EXIT = { OK: 0, ERROR: 1, CHAIN_BROKEN: 2 } as const;
