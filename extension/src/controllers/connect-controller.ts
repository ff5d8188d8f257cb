import * as vscode from "vscode";
import { describeFarmError, normaliseFarmUrl } from "../farm/farm-client.js";
import { FarmConnectionError, type FarmConnection, type Identity } from "../farm/connection.js";
import type { FarmCredentials } from "../farm/credentials.js";

export interface ConnectOptions {
  url?: string;
  token?: string;
  /** no prompts and no error popups: used when the extension reconnects at start */
  silent?: boolean;
}

/**
 * "Connect to Farm": asks for the URL (prefilled from settings) and the token (kept in
 * SecretStorage), checks both with the farm, and on failure says what is wrong with one way to fix it.
 */
export class ConnectController {
  constructor(
    private readonly connection: FarmConnection,
    private readonly credentials: FarmCredentials,
  ) {}

  async connect(opts: ConnectOptions = {}): Promise<Identity | undefined> {
    let url = opts.url;
    if (url === undefined && !opts.silent) {
      url = await vscode.window.showInputBox({
        title: "Connect to Optimus farm (1/2)",
        prompt: "The farm's URL, as `optimus farm up` printed it",
        value: this.credentials.url || "http://127.0.0.1:7420",
        ignoreFocusOut: true,
        validateInput: (v) => ("error" in normaliseFarmUrl(v) ? (normaliseFarmUrl(v) as { error: string }).error : null),
      });
      if (url === undefined) return undefined;
    }
    url ??= this.credentials.url;
    const n = normaliseFarmUrl(url);
    if ("error" in n) {
      if (!opts.silent) void vscode.window.showErrorMessage(`Optimus: ${n.error}`);
      return undefined;
    }
    let token = opts.token;
    if (token === undefined && !opts.silent) {
      const stored = await this.credentials.token();
      token = await vscode.window.showInputBox({
        title: "Connect to Optimus farm (2/2)",
        prompt: stored
          ? "Editor token (leave as is to keep the stored one)"
          : "Editor token, from `optimus token create --role editor --name you`",
        value: stored ? "" : undefined,
        placeHolder: stored ? "(stored token)" : "paste the token",
        password: true,
        ignoreFocusOut: true,
      });
      if (token === undefined) return undefined;
      if (!token.trim() && stored) token = stored;
    }
    token ??= await this.credentials.token();
    if (!token?.trim()) {
      if (!opts.silent)
        void vscode.window.showErrorMessage(
          "Optimus: a token is needed to connect. Create one with `optimus token create --role editor --name you`.",
        );
      return undefined;
    }
    try {
      // Read at each connect: a pin or CA file set since applies now. An unusable value is its own one-line error.
      const me = await this.connection.connect(n.url, token.trim(), this.credentials.trust());
      await this.credentials.setUrl(n.url);
      await this.credentials.setToken(token.trim());
      if (!opts.silent) void vscode.window.showInformationMessage(`Optimus: connected to ${n.url} as ${me.actor}.`);
      return me;
    } catch (err) {
      const d = err instanceof FarmConnectionError ? null : describeFarmError(err, n.url);
      const e = d ? new FarmConnectionError(d.kind, d.message) : (err as FarmConnectionError);
      if (!opts.silent) void this.explain(e);
      return undefined;
    }
  }

  /** One message per failure, with the fix as its button. */
  async explain(e: FarmConnectionError): Promise<void> {
    const fix =
      e.kind === "auth" ? "Enter Token" : e.kind === "unreachable" ? "Change URL" : e.kind === "certificate" ? "Open Settings" : undefined;
    const actions = e.kind === "unreachable" ? [fix!, "Retry"] : fix ? [fix] : [];
    const a = await vscode.window.showErrorMessage(`Optimus: ${e.message}`, ...actions);
    if (a === "Open Settings") await vscode.commands.executeCommand("workbench.action.openSettings", "optimus.farm");
    else if (a === "Enter Token") {
      await this.credentials.forgetToken();
      await this.connect({ url: this.credentials.url || this.connection.url });
    } else if (a === "Change URL") await this.connect();
    else if (a === "Retry") await this.connect({ url: this.connection.url ?? this.credentials.url, token: await this.credentials.token() });
  }
}
