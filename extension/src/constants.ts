/** Ids the manifest (package.json) and the code share. */
export const VIEW_UNITS = "optimus.units";
export const VIEW_FLEET = "optimus.fleet";
export const CHANGE_SCHEME = "optimus-change";
export const COMMENT_CONTROLLER = "optimus-review";
export const SECRET_TOKEN_KEY = "optimus.farmToken";
/** context key: "connected" | "connecting" | "disconnected" */
export const CTX_CONNECTION = "optimus.connection";
export type UnitsFilter = "all" | "mine" | "needsMe";
