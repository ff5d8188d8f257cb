import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import { ROOT } from "../helpers/paths.js";
import { codeServerBinary, openWorkbench, runExtensionSuite, scratchDir, treeRow, type Workbench } from "../helpers/vscode/index.js";

// The harness that runs the extension's tests in a real VS Code (code-server + headless Chromium), checked
// on a fixture extension. code-server missing is a failure with the install hint, never a skip.
const FIXTURE = join(ROOT, "test", "fixtures", "hello-extension");
const SUITE = join(FIXTURE, "suite", "index.js");
const ARTIFACTS = join(ROOT, "test-artifacts", "vscode-harness");
const GREETING = "Hello from the Optimus test fixture!";

function workspace(t: TestContext): string {
  const { path, remove } = scratchDir("optimus-vscode-ws-"); // removed also if the run is interrupted
  writeFileSync(join(path, "README.md"), "# a workspace for the VS Code harness test\n");
  t.after(remove);
  return path;
}

async function seeGreetingAndTree(wb: Workbench): Promise<void> {
  const { page } = wb;
  await wb.screenshot("workbench-ready");
  await wb.runCommand("Hello: Say Hi");
  await page.locator(".notifications-toasts").getByText(GREETING).waitFor({ state: "visible", timeout: 20_000 });
  await wb.screenshot("hello-notification");
  await page.locator(".part.activitybar").getByRole("tab", { name: "Hello Views" }).click();
  await treeRow(page, "Hello Alpha").waitFor({ state: "visible", timeout: 20_000 });
  assert.equal(await treeRow(page, "Hello Beta").isVisible(), true);
  await wb.screenshot("hello-tree");
}

test.before(() => {
  codeServerBinary(); // throws "code-server … not found …: run scripts/install-vscode-test-deps.sh"
  rmSync(ARTIFACTS, { recursive: true, force: true }); // this run's screenshots only
  mkdirSync(ARTIFACTS, { recursive: true });
});

test(
  "runExtensionSuite: the fixture's Mocha suite passes in code-server, and a failing test makes it reject",
  { timeout: 300_000 },
  async (t) => {
    const ws = workspace(t);
    let t0 = Date.now();
    await runExtensionSuite({
      extensionDevelopmentPath: FIXTURE,
      extensionTestsPath: SUITE,
      workspace: ws,
      env: { HELLO_EXPECT: "from-the-test-process" },
      artifactsDir: ARTIFACTS,
      timeoutMs: 120_000,
    });
    t.diagnostic(`passing suite: ${Date.now() - t0} ms`);

    t0 = Date.now();
    await assert.rejects(
      runExtensionSuite({
        extensionDevelopmentPath: FIXTURE,
        extensionTestsPath: SUITE,
        workspace: ws,
        env: { HELLO_EXPECT: "from-the-test-process", HELLO_FAIL: "1" },
        artifactsDir: ARTIFACTS,
        timeoutMs: 120_000,
      }),
      (err: Error) => {
        assert.match(err.message, /failed in code-server: Test run failed with code 1/);
        assert.match(err.message, /deliberate failure requested by HELLO_FAIL=1/);
        return true;
      },
    );
    t.diagnostic(`failing suite: ${Date.now() - t0} ms`);
  },
);

test(
  "openWorkbench: 'Hello: Say Hi' from the palette shows its notification, the view container shows the tree, an input box takes text",
  { timeout: 300_000 },
  async (t) => {
    const t0 = Date.now();
    const wb = await openWorkbench({
      workspace: workspace(t),
      extensionDevelopmentPath: FIXTURE,
      artifactsDir: join(ARTIFACTS, "dev-path"),
    });
    t.after(() => wb.close());
    await seeGreetingAndTree(wb);
    await wb.runCommand("Hello: Greet Someone");
    await wb.fillQuickInput("Optimus");
    await wb.page.locator(".notifications-toasts").getByText("Hello, Optimus!").waitFor({ state: "visible", timeout: 20_000 });
    await wb.screenshot("greeted-from-input-box");
    await wb.close();
    t.diagnostic(`workbench (development path): ${Date.now() - t0} ms`);
  },
);

test("openWorkbench with a packaged .vsix: the installed extension works the same", { timeout: 300_000 }, async (t) => {
  const t0 = Date.now();
  const vsce = join(ROOT, "node_modules", ".bin", "vsce");
  assert.ok(existsSync(vsce), `${vsce} is missing (a devDependency of extension/; run npm ci)`);
  const { path: out, remove } = scratchDir("optimus-vsix-");
  t.after(remove);
  const vsix = join(out, "hello.vsix");
  const r = spawnSync(vsce, ["package", "--allow-missing-repository", "--skip-license", "--no-dependencies", "-o", vsix], {
    cwd: FIXTURE,
    encoding: "utf8",
  });
  assert.equal(r.status, 0, `vsce package failed:\n${r.stdout}${r.stderr}`);
  const wb = await openWorkbench({ workspace: workspace(t), vsix, artifactsDir: join(ARTIFACTS, "vsix") });
  t.after(() => wb.close());
  await seeGreetingAndTree(wb);
  await wb.close();
  t.diagnostic(`workbench (.vsix): ${Date.now() - t0} ms`);
});
