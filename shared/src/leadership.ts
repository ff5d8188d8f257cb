/**
 * Farm nodes sharing one store: one leads, the others stand by. A standby answers every request but
 * `/healthz` with 503 and this header, naming the leader's URL (empty while none is known), so
 * clients given several farm URLs move on to the leader; it never carries a call out.
 */
export const LEADER_HEADER = "x-optimus-leader";
