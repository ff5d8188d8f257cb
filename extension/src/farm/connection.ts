import * as vscode from "vscode";
import { FarmViews, type ViewsChange, type ViewsMessage } from "@optimus/shared";
import type { ViewContext } from "../model/unit-presentation.js";
import { CTX_CAN_APPROVE, CTX_CONNECTION, CTX_FRONTIER } from "../constants.js";
import { describeFarmError, httpClient, socketClient, type FarmApi, type SocketClient } from "./farm-client.js";
import type { FarmTrust } from "@optimus/farm-server/dist/client/farm-trust.js";

export type ConnectionState = "disconnected" | "connecting" | "connected";

export interface Identity {
  actor: string;
  role: string;
  name: string;
  /** the token may approve changes that touch protected paths */
  approver: boolean;
}

/** A failure to connect, already phrased for a person; `kind` says which fix to offer. */
export class FarmConnectionError extends Error {
  constructor(
    readonly kind: "auth" | "unreachable" | "refused" | "certificate" | "other",
    message: string,
  ) {
    super(message);
  }
}

/** A call refused before anything was sent, because the editor is not connected to the farm now. */
export class NotConnectedError extends Error {
  override name = "NotConnectedError";
}

/** How long one call to the farm may take (an approval merges before it answers). */
const CALL_TIMEOUT_MS = 60_000;

/**
 * The editor's link to one farm: checks the URL and token, holds the WebSocket for the resumable
 * `views.stream` subscription (a `FarmViews` copy of the farm everything else reads), and makes the
 * person's calls.
 *
 * Calls go over plain HTTP, one request each, and only while the stream is connected: tRPC's
 * WebSocket client keeps a call made while it reconnects and sends it once the socket is back, which
 * would run a click minutes later without a word. Over HTTP a call either reaches the farm now or
 * fails now, and `api` refuses before sending anything when the stream is not live.
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
  private http: FarmApi | null = null;
  private subscription: { unsubscribe(): void } | null = null;
  private _state: ConnectionState = "disconnected";
  private _url: string | undefined;
  private _identity: Identity | undefined;

  get state(): ConnectionState {
    return this._state;
  }
  get connected(): boolean {
    return this._state === "connected";
  }
  get url(): string | undefined {
    return this._url;
  }
  get identity(): Identity | undefined {
    return this._identity;
  }
  /** the farm's clock now (ages and timers are measured on it, not on this machine's clock) */
  farmNow(): number {
    return this.views.farmNow();
  }

  /** What the views need besides the model: the farm's clock, liveness, the token's right. */
  viewContext(): ViewContext {
    return {
      now: this.farmNow(),
      live: this.connected,
      approver: this._identity?.approver === true,
      frontierConfigured: this.views.spend.frontierConfigured === true,
    };
  }

  /**
   * The farm's API for one call now. Throws `NotConnectedError` (nothing sent) unless the views
   * stream is live: read it right before the call, never keep it.
   */
  get api(): FarmApi {
    if (!this.http || this._state !== "connected") throw new NotConnectedError(this.notConnectedReason());
    return this.http;
  }

  /** Why a click cannot reach the farm now, as the start of a sentence. */
  notConnectedReason(): string {
    if (this._state === "connecting")
      return `Not connected to the farm: the connection to ${this._url} was lost and the editor is reconnecting, so nothing was sent. Try again once the status bar shows the farm.`;
    return "Not connected to the farm, so nothing was sent. Run 'Optimus: Connect to Farm' first.";
  }

  /**
   * Checks the URL and token with one HTTP call, then opens the socket and the views stream; an
   * https:// farm's certificate must satisfy `trust` (pins, a CA file) for either to be sent anything.
   */
  async connect(url: string, token: string, trust: FarmTrust = {}): Promise<Identity> {
    this.disconnect();
    this._url = url;
    this.setState("connecting");
    let me: Identity;
    try {
      const r = (await httpClient(url, token, undefined, trust).me.query()) as {
        actor: string;
        role: string;
        name: string;
        approver?: boolean;
      };
      me = { actor: r.actor, role: r.role, name: r.name, approver: r.approver === true || r.role === "admin" };
    } catch (err) {
      this.setState("disconnected");
      const d = describeFarmError(err, url);
      throw new FarmConnectionError(d.kind, d.message);
    }
    this._identity = me;
    this.http = httpClient(url, token, CALL_TIMEOUT_MS, trust);
    let subscribed = false;
    this.socket = socketClient(
      url,
      token,
      {
        open: () => subscribed && this.setState("connected"),
        close: () => this.socket && this.setState("connecting"),
      },
      trust,
    );
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
            this.setContext(CTX_FRONTIER, this.views.spend.frontierConfigured === true);
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
    this.setContext(CTX_CAN_APPROVE, me.approver);
    return me;
  }

  /** The next page of older finished tasks (the tree's "show more"): merged into the views. */
  async loadMoreHistory(): Promise<number> {
    const before = this.views.history.before;
    if (!this.http || before === undefined || this.views.history.more === 0) return 0;
    const page = await this.http.views.history.query({ before });
    const change = this.views.addHistory(page);
    this.viewsEmitter.fire(change);
    return change.tasks.size;
  }

  disconnect(): void {
    this.subscription?.unsubscribe();
    this.subscription = null;
    const s = this.socket;
    this.socket = null;
    this.http = null;
    s?.close();
    this.setState("disconnected");
  }

  private setState(s: ConnectionState): void {
    if (s === this._state) return;
    this._state = s;
    this.setContext(CTX_CONNECTION, s);
    this.stateEmitter.fire(s);
  }

  private readonly contexts = new Map<string, unknown>();
  private setContext(key: string, value: unknown): void {
    if (this.contexts.get(key) === value) return;
    this.contexts.set(key, value);
    void vscode.commands.executeCommand("setContext", key, value);
  }

  dispose(): void {
    this.disconnect();
    this.stateEmitter.dispose();
    this.viewsEmitter.dispose();
    this.errorEmitter.dispose();
  }
}
