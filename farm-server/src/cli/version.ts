import { FARM_VERSION } from "../version.js";

/** This package's version (`optimus --version`). */
export const packageVersion = (): string => FARM_VERSION;
