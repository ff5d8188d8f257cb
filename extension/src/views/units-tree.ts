import * as vscode from "vscode";
import { unitKey, type ViewsChange } from "@optimus/shared";
import type { UnitsFilter } from "../constants.js";
import type { FarmConnection } from "../farm/connection.js";
import { taskPresentation, unitPresentation, type Presentation } from "../model/unit-presentation.js";

export type UnitsNode = { kind: "task"; taskId: string } | { kind: "unit"; taskId: string; unitId: string } | { kind: "more" };

/** The last root node while the farm holds older finished tasks than the tree was sent. */
const MORE: UnitsNode = { kind: "more" };

/**
 * Tasks → units, from the connection's live model. Only what changed is refreshed (a task node and
 * its units), node objects are reused by key, and running units tick their elapsed time once a
 * second, so the tree stays smooth with thousands of units.
 */
export class UnitsTreeProvider implements vscode.TreeDataProvider<UnitsNode>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<UnitsNode | UnitsNode[] | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly nodes = new Map<string, UnitsNode>();
  private readonly disposables: vscode.Disposable[] = [];
  private readonly ticker: NodeJS.Timeout;
  filter: UnitsFilter;

  constructor(
    private readonly connection: FarmConnection,
    filter: UnitsFilter,
  ) {
    this.filter = filter;
    this.disposables.push(
      connection.onDidChangeViews((c) => this.onViews(c)),
      connection.onDidChangeState(() => this.changed.fire(undefined)),
    );
    this.ticker = setInterval(() => this.tickRunning(), 1_000);
  }

  setFilter(f: UnitsFilter): void {
    this.filter = f;
    this.changed.fire(undefined);
  }

  private node(n: UnitsNode): UnitsNode {
    const key = n.kind === "task" ? n.taskId : n.kind === "unit" ? unitKey(n.taskId, n.unitId) : "more";
    let cached = this.nodes.get(key);
    if (!cached) this.nodes.set(key, (cached = n));
    return cached;
  }

  taskNode(taskId: string): UnitsNode {
    return this.node({ kind: "task", taskId });
  }

  private onViews(c: ViewsChange): void {
    if (c.reset || this.filter !== "all" || c.tasks.size > 200) return this.changed.fire(undefined);
    const nodes: UnitsNode[] = [];
    for (const t of c.tasks) nodes.push(this.taskNode(t));
    for (const k of c.units) {
      const u = this.connection.views.units.get(k);
      if (u && !c.tasks.has(u.taskId)) nodes.push(this.node({ kind: "unit", taskId: u.taskId, unitId: u.unitId }));
    }
    // A task node that is new to the tree needs its parent (the root) refreshed.
    if ([...c.tasks].some((t) => !this.shownTasks.has(t))) return this.changed.fire(undefined);
    if (nodes.length) this.changed.fire(nodes);
  }

  private tickRunning(): void {
    // Disconnected or reconnecting: the last known times stay still rather than count on.
    if (!this.connection.connected) return;
    const running: UnitsNode[] = [];
    for (const u of this.connection.views.units.values()) {
      if (u.state === "leased" && this.visibleUnit(u.taskId, u.unitId))
        running.push(this.node({ kind: "unit", taskId: u.taskId, unitId: u.unitId }));
      if (running.length >= 200) break;
    }
    if (running.length) this.changed.fire(running);
  }

  private shownTasks = new Set<string>();

  private visibleTask(taskId: string): boolean {
    const v = this.connection.views;
    const t = v.tasks.get(taskId);
    if (!t) return false;
    if (this.filter === "mine") return t.createdBy === this.connection.identity?.actor;
    if (this.filter === "needsMe") return v.unitsOf(taskId).some((u) => v.needsHuman(u));
    return true;
  }

  private visibleUnit(taskId: string, unitId: string): boolean {
    if (!this.visibleTask(taskId)) return false;
    if (this.filter !== "needsMe") return true;
    const u = this.connection.views.unit(taskId, unitId);
    return !!u && this.connection.views.needsHuman(u);
  }

  getChildren(element?: UnitsNode): UnitsNode[] {
    const v = this.connection.views;
    if (this.connection.state === "disconnected" && v.tasks.size === 0) return [];
    if (!element) {
      const tasks = [...v.tasks.values()].filter((t) => this.visibleTask(t.taskId)).sort((a, b) => b.createdAt - a.createdAt);
      this.shownTasks = new Set(tasks.map((t) => t.taskId));
      const nodes = tasks.map((t) => this.taskNode(t.taskId));
      // Older finished tasks are fetched on demand (the first message holds live work and recent history).
      return v.history.more > 0 && this.filter !== "needsMe" ? [...nodes, MORE] : nodes;
    }
    if (element.kind === "task") {
      return v
        .unitsOf(element.taskId)
        .filter((u) => this.filter !== "needsMe" || v.needsHuman(u))
        .map((u) => this.node({ kind: "unit", taskId: u.taskId, unitId: u.unitId }));
    }
    return [];
  }

  getParent(element: UnitsNode): UnitsNode | undefined {
    return element.kind === "unit" ? this.taskNode(element.taskId) : undefined;
  }

  getTreeItem(element: UnitsNode): vscode.TreeItem {
    const v = this.connection.views;
    let p: Presentation;
    let item: vscode.TreeItem;
    if (element.kind === "more") {
      item = new vscode.TreeItem(`Show older tasks… (${v.history.more} more finished)`, vscode.TreeItemCollapsibleState.None);
      item.id = "more";
      item.iconPath = new vscode.ThemeIcon("history");
      item.command = { command: "optimus.tasks.showMore", title: "Show Older Tasks" };
      item.contextValue = "more";
      return item;
    }
    if (element.kind === "task") {
      const t = v.tasks.get(element.taskId);
      if (!t) return new vscode.TreeItem(element.taskId);
      p = taskPresentation(t, this.connection.connected);
      item = new vscode.TreeItem(p.label, vscode.TreeItemCollapsibleState.Expanded);
      item.id = `task:${t.taskId}`;
    } else {
      const u = v.unit(element.taskId, element.unitId);
      if (!u) return new vscode.TreeItem(element.unitId);
      p = unitPresentation(u, this.connection.viewContext());
      item = new vscode.TreeItem(p.label, vscode.TreeItemCollapsibleState.None);
      item.id = `unit:${u.taskId}/${u.unitId}`;
      item.command =
        u.evaluation && this.connection.connected
          ? { command: "optimus.unit.openChange", title: "Open Change", arguments: [element] }
          : { command: "optimus.unit.showDetail", title: "Show Unit Detail", arguments: [element] };
    }
    item.description = p.description;
    item.iconPath = new vscode.ThemeIcon(p.icon, p.color ? new vscode.ThemeColor(p.color) : undefined);
    item.tooltip = new vscode.MarkdownString(p.tooltip);
    item.contextValue = p.contextValue;
    return item;
  }

  dispose(): void {
    clearInterval(this.ticker);
    this.changed.dispose();
    for (const d of this.disposables) d.dispose();
  }
}
