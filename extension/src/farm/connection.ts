import * as vscode from "vscode";
import { FarmViews, type ViewsChange, type ViewsMessage } from "@optimus/shared";
import { describeFarmError, httpClient, socketClient, type FarmApi, type SocketClient } from "./farm-client.js";

export type ConnectionState = "disconnected" | "connecting" | "connected";

export interface Identity {
  actor: string;
  role: string;
  name: string;
}

/** A failure to connect, already phrased for a person; `kind` says which fix to offer. */
export class FarmConnectionError extends Error {
  constructor(readonly kind: "auth" | "unreachable" | "refused" | "other", message: string) {
    super(message);
  }
}

/**
 * The editor's link to one farm: checks the URL and token, holds the WebSocket, and keeps a
 * `FarmViews` copy of the farm in sync through the resumable `views.stream` subscription. Everything
 * that shows farm state reads `views` and listens to `onDidChangeViews`.
 */
export class FarmConnection implements vscode.Disposable {
  readonly views = new FarmViews();
  private readonly stateEmitter = new vscode.EventEmitter<ConnectionState>();
  private readonly viewsEmitter = new vscode.EventEmitter<ViewsChange>();
  private readonly errorEmitter = new vscode.EventEmitter<FarmConnectionError>();
  readonly onDidChangeState = this.stateEmitter.event;
  readonly onDidChangeViews = this.viewsEmitter.event;
  /** a live connection failed in a way reconnecting cannot fix (token revoked) */
  readonly onDidFail = this.errorEmitter.event;
  private socket: SocketClient | null = null;
  private subscription: { unsubscribe(): void } | null = null;
  private _state: ConnectionState = "disconnected";
  private _url: string | undefined;
  private _identity: Identity | undefined;

  get state(): ConnectionState {
    return this._state;
  }
  get url(): string | undefined {
    return this._url;
  }
  get identity(): Identity | undefined {
    return this._identity;
  }
  get api(): FarmApi {
    if (!this.socket) throw new FarmConnectionError("other", "Not connected to a farm. Run 'Optimus: Connect to Farm' first.");
    return this.socket.api;
  }

  /** Checks the URL and token with one HTTP call, then opens the socket and the views stream. */
  async connect(url: string, token: string): Promise<Identity> {
    this.disconnect();
    this._url = url;
    this.setState("connecting");
    let me: Identity;
    try {
      const r = await httpClient(url, token).me.query();
      me = { actor: r.actor, role: r.role, name: r.name };
    } catch (err) {
      this.setState("disconnected");
      const d = describeFarmError(err, url);
      throw new FarmConnectionError(d.kind, d.message);
    }
    this._identity = me;
    let subscribed = false;
    this.socket = socketClient(url, token, {
      open: () => subscribed && this.setState("connected"),
      close: () => this.socket && this.setState("connecting"),
    });
    const first = new Promise<void>((resolve, reject) => {
      this.subscription = this.socket!.api.views.stream.subscribe(
        { lastEventId: null },
        {
          onStarted: () => {
            subscribed = true;
          },
          onData: (env) => {
            const change = this.views.apply(env.data as ViewsMessage);
            if (this._state !== "connected") this.setState("connected");
            this.viewsEmitter.fire(change);
            resolve();
          },
          onError: (err) => {
            const d = describeFarmError(err, url);
            const e = new FarmConnectionError(d.kind, d.message);
            reject(e);
            this.disconnect();
            this.errorEmitter.fire(e);
          },
        },
      );
    });
    await first;
    return me;
  }

  disconnect(): void {
    this.subscription?.unsubscribe();
    this.subscription = null;
    const s = this.socket;
    this.socket = null;
    s?.close();
    this.setState("disconnected");
  }

  private setState(s: ConnectionState): void {
    if (s === this._state) return;
    this._state = s;
    void vscode.commands.executeCommand("setContext", "optimus.connection", s);
    this.stateEmitter.fire(s);
  }

  dispose(): void {
    this.disconnect();
    this.stateEmitter.dispose();
    this.viewsEmitter.dispose();
    this.errorEmitter.dispose();
  }
}
