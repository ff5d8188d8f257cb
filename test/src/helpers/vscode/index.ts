export {
  CODE_SERVER_VERSION,
  CodeServer,
  INSTALL_HINT,
  codeServerBinary,
  codeServerPath,
  installVsix,
  newProfile,
  registerCleanup,
  registerCloser,
  scratchDir,
  type CodeServerProfile,
} from "./code-server.js";
export { LAUNCHER, runExtensionSuite, type ExtensionSuiteOptions } from "./run-suite.js";
export { openWorkbench, treeRow, type Workbench, type WorkbenchOptions } from "./workbench.js";
