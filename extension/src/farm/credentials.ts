import * as vscode from "vscode";
import { SECRET_TOKEN_KEY } from "../constants.js";

/**
 * Where the farm's URL and token live: the URL in settings (it is not secret, and a team may share
 * it in workspace settings), the token only in the editor's SecretStorage.
 */
export class FarmCredentials {
  constructor(private readonly secrets: vscode.SecretStorage) {}

  get url(): string {
    return vscode.workspace.getConfiguration("optimus").get<string>("farmUrl", "").trim();
  }

  async setUrl(url: string): Promise<void> {
    await vscode.workspace.getConfiguration("optimus").update("farmUrl", url, vscode.ConfigurationTarget.Global);
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
