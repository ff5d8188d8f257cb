import * as vscode from "vscode";
import { parsePins, readCaFile, type FarmTrust } from "@optimus/farm-server/dist/client/farm-trust.js";
import { SECRET_TOKEN_KEY } from "../constants.js";

/**
 * Where the farm's URL and token live: the URL in settings (it is not secret, and a team may share
 * it in workspace settings), the token only in the editor's SecretStorage. What an https:// farm's
 * certificate must satisfy (a pin, a CA file) is in settings too: public, and shared the same way.
 */
export class FarmCredentials {
  constructor(private readonly secrets: vscode.SecretStorage) {}

  get url(): string {
    return vscode.workspace.getConfiguration("optimus").get<string>("farmUrl", "").trim();
  }

  async setUrl(url: string): Promise<void> {
    await vscode.workspace.getConfiguration("optimus").update("farmUrl", url, vscode.ConfigurationTarget.Global);
  }

  /**
   * `optimus.farmPin` and `optimus.farmCa`, read now (a changed setting applies at the next connect);
   * throws `FarmTrustError` with one line naming the setting when a value cannot be used.
   */
  trust(): FarmTrust {
    const c = vscode.workspace.getConfiguration("optimus");
    const pin = c.get<string>("farmPin", "").trim();
    const ca = c.get<string>("farmCa", "").trim();
    return {
      ...(pin ? { pins: parsePins(pin, "the optimus.farmPin setting"), pinFrom: "the optimus.farmPin setting" } : {}),
      ...(ca ? { ca: readCaFile(ca, "the optimus.farmCa setting") } : {}),
    };
  }

  token(): Thenable<string | undefined> {
    return this.secrets.get(SECRET_TOKEN_KEY);
  }

  setToken(token: string): Thenable<void> {
    return this.secrets.store(SECRET_TOKEN_KEY, token);
  }

  forgetToken(): Thenable<void> {
    return this.secrets.delete(SECRET_TOKEN_KEY);
  }
}
