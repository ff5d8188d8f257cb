// The integration suite's entry point inside VS Code's extension host: defines the tests once Mocha
// has set up its globals, runs them, and settles with the outcome (the launcher turns that into the
// process exit code). The farm, its workers and the repository come from the harness (test/src/e2e).
import Mocha from "mocha";
import { defineFarmIntegrationTests } from "./farm-integration.test.js";
import { defineReviewTrustTests } from "./review-trust.test.js";

export function run(): Promise<void> {
  const mocha = new Mocha({ ui: "tdd", color: false, timeout: 120_000, reporter: "spec" });
  mocha.suite.emit("pre-require", globalThis, "suite", mocha);
  defineFarmIntegrationTests();
  defineReviewTrustTests();
  return new Promise((resolve, reject) => {
    mocha.run((failures) => (failures > 0 ? reject(new Error(`${failures} integration test(s) failed`)) : resolve()));
  });
}
