/** Ids the manifest (package.json) and the code share. */
export const VIEW_UNITS = "optimus.units";
export const VIEW_FLEET = "optimus.fleet";
export const CHANGE_SCHEME = "optimus-change";
export const COMMENT_CONTROLLER = "optimus-review";
export const SECRET_TOKEN_KEY = "optimus.farmToken";
/** context key: "connected" | "connecting" | "disconnected" */
export const CTX_CONNECTION = "optimus.connection";
/** context key: the farm has a frontier model (Escalate is offered only then) */
export const CTX_FRONTIER = "optimus.frontierConfigured";
/** context key: this editor's token may approve changes to protected paths */
export const CTX_CAN_APPROVE = "optimus.approver";
/**
 * context key: the actions the active change editor's unit allows now, space-separated with a
 * leading and trailing space (" approve reject request_changes "), for the editor title's buttons.
 */
export const CTX_CHANGE_ACTIONS = "optimus.changeActions";
export type UnitsFilter = "all" | "mine" | "needsMe";
