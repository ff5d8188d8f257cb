/**
 * The team's repository and people in the resident-farm and forge tests: a small project whose
 * test fails until `add` adds, and the GitHub stand-in's tokens (each one a user or an app).
 */
export const teamFiles = (name = "team"): Record<string, string> => ({
  "src/add.js": "export function add(a, b) {\n  return a - b;\n}\n",
  "test/add.test.js":
    "import assert from 'node:assert/strict';\nimport { add } from '../src/add.js';\nassert.equal(add(2, 3), 5);\nconsole.log('add works');\n",
  "package.json": JSON.stringify({ name, type: "module", private: true }, null, 2) + "\n",
  "README.md": `# ${name}\n`,
});
/** `add` fixed */
export const FIX = "export function add(a, b) {\n  return a + b;\n}\n";

export const GITHUB = {
  FARM_TOKEN: "ghs_farmInstallationToken0000000000000001",
  CI_TOKEN: "ghs_teamCiInstallationToken000000000000001",
  ALICE_TOKEN: "ghp_aliceWriteAccessToken00000000000000001",
  MALLORY_TOKEN: "ghp_malloryReadOnlyToken000000000000000001",
  HOOK_SECRET: "webhook-secret-for-the-farm-0001",
  FARM_APP: { id: 901, slug: "optimus-farm", name: "Optimus farm" },
  CI_APP: { id: 902, slug: "team-ci", name: "Team CI" },
} as const;
