// Lint for every workspace (issue 15): typescript-eslint's recommended rules, without type
// information (fast enough to run on every `npm test`). Formatting is Prettier's job, not ESLint's;
// import boundaries are dependency-cruiser's (.dependency-cruiser.cjs).
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["**/dist/**", "**/node_modules/**", "**/out/**", "**/.vscode-test/**", "extension/media/**", "webview/build/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      // `_`-prefixed names are deliberately unused (destructuring a field away, a required parameter).
      "@typescript-eslint/no-unused-vars": [
        "error",
        { argsIgnorePattern: "^_", varsIgnorePattern: "^_", destructuredArrayIgnorePattern: "^_", caughtErrors: "none" },
      ],
      // Node's globals are type-checked by TypeScript already.
      "no-undef": "off",
      // The farm's input rules look for control characters on purpose (paths, names, terminal text).
      "no-control-regex": "off",
      // An empty catch is this code's idiom for "best effort" (cleanup, probes); other empty blocks are not.
      "no-empty": ["error", { allowEmptyCatch: true }],
      // `declare global { var … }` is how a global is typed.
      "no-var": "off",
      "@typescript-eslint/no-unused-expressions": ["error", { allowShortCircuit: true, allowTernary: true }],
    },
  },
  {
    // The GitHub stand-in handles JSON shaped by GitHub's OpenAPI description, validated by ajv, not by TypeScript.
    files: ["test/src/helpers/github-standin*.ts"],
    rules: { "@typescript-eslint/no-explicit-any": "off" },
  },
  {
    // CommonJS: stand-in tools and fixture extensions loaded by other programs (VS Code, the secrets CLIs).
    files: ["**/*.cjs", "test/fixtures/**/*.js"],
    languageOptions: { sourceType: "commonjs" },
    rules: { "@typescript-eslint/no-require-imports": "off" },
  },
);
