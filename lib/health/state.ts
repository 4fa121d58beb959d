/**
 * The state machine of one health check (ExaBGP's healthcheck states):
 * INIT → RISING / FALLING → UP / DOWN, and DISABLED (drain file or
 * `bgpctl check NAME disable`). Pure: fed one result at a time.
 *
 * - The first result after start (or after DISABLED ends) counts: a success
 *   makes the check RISING, a failure FALLING, with a count of 1 — neither
 *   up nor down yet.
 * - RISING goes UP after `rise` consecutive successes; FALLING goes DOWN
 *   after `fall` consecutive failures (with rise or fall 1, at once). A
 *   result the other way turns RISING into FALLING (count 1) and back.
 * - UP stays UP on successes; a failure makes it FALLING. DOWN likewise.
 * - DISABLED ignores results; enabling again starts over at INIT.
 *
 * `up` is what is announced, as ExaBGP does: it turns true on entering UP
 * and false on entering DOWN or DISABLED, and RISING/FALLING keep the last
 * decision (a check falling from UP keeps announcing until it is DOWN). At
 * start nothing is decided: `up` is false (the "down" form).
 */

export const CHECK_STATES = ["INIT", "RISING", "FALLING", "UP", "DOWN", "DISABLED"] as const;
export type CheckState = (typeof CHECK_STATES)[number];

export class CheckFsm {
  state: CheckState = "INIT";
  /** Consecutive results in the current direction (RISING/FALLING). */
  count = 0;
  /** The announced form: true once UP until DOWN or DISABLED. */
  up = false;

  constructor(
    public rise: number,
    public fall: number,
  ) {}

  /** Checks run at the fast interval while nothing is decided. */
  get transient(): boolean {
    return this.state === "INIT" || this.state === "RISING" || this.state === "FALLING";
  }

  /** Feed one result; returns the previous state when the state changed, else null. */
  feed(ok: boolean): CheckState | null {
    const was = this.state;
    switch (was) {
      case "DISABLED":
        return null;
      case "UP":
        if (!ok) this.toward(false);
        break;
      case "DOWN":
        if (ok) this.toward(true);
        break;
      case "RISING":
        if (ok) this.step(true);
        else this.toward(false);
        break;
      case "FALLING":
        if (!ok) this.step(false);
        else this.toward(true);
        break;
      case "INIT":
        this.toward(ok);
        break;
    }
    return this.state === was ? null : was;
  }

  /** Enter DISABLED; returns the previous state, or null when already disabled. */
  disable(): CheckState | null {
    if (this.state === "DISABLED") return null;
    const was = this.state;
    this.set("DISABLED", 0);
    return was;
  }

  /** Leave DISABLED for INIT (the next result decides the direction); null when not disabled. */
  enable(): CheckState | null {
    if (this.state !== "DISABLED") return null;
    this.set("INIT", 0);
    return "DISABLED";
  }

  /** The first result in a direction: count 1, decided at once when the threshold is 1. */
  private toward(ok: boolean): void {
    this.set(ok ? "RISING" : "FALLING", 0);
    this.step(ok);
  }

  private step(ok: boolean): void {
    this.count++;
    if (ok && this.count >= this.rise) this.set("UP", 0);
    else if (!ok && this.count >= this.fall) this.set("DOWN", 0);
  }

  private set(s: CheckState, count: number): void {
    this.state = s;
    this.count = count;
    if (s === "UP") this.up = true;
    else if (s === "DOWN" || s === "DISABLED") this.up = false;
  }
}
