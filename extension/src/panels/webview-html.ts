import { randomBytes } from "node:crypto";
import * as vscode from "vscode";

/**
 * The HTML shell of a webview page built in `webview/` (copied to `dist/webview` at build time):
 * a strict CSP with a per-load nonce, the page's script and stylesheet from the extension's own
 * files, nothing inline, nothing remote.
 */
export function pageHtml(webview: vscode.Webview, extensionUri: vscode.Uri, page: "unit-detail" | "dashboard", title: string): string {
  const nonce = randomBytes(16).toString("base64");
  const asset = (f: string) => webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, "dist", "webview", f));
  const csp = [
    "default-src 'none'",
    `script-src 'nonce-${nonce}' ${webview.cspSource}`,
    `style-src ${webview.cspSource} 'nonce-${nonce}'`,
    `img-src ${webview.cspSource} data:`,
    `font-src ${webview.cspSource}`,
  ].join("; ");
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>${escapeHtml(title)}</title>
<link rel="stylesheet" href="${asset(`${page}.css`)}" nonce="${nonce}">
</head>
<body>
<div id="root"></div>
<script nonce="${nonce}" src="${asset(`${page}.js`)}"></script>
</body>
</html>`;
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
