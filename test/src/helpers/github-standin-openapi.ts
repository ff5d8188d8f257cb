/**
 * GitHub's official OpenAPI description of api.github.com (the `@octokit/openapi` package) as the
 * judge of the GitHub stand-in: every request it receives, every response it sends and every webhook
 * it delivers is validated against the operation (or webhook) the description defines, with Ajv.
 * A mismatch is a violation: the stand-in records it and answers so the test fails.
 */
import { createRequire } from "node:module";
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http";
import type { ValidateFunction } from "ajv";

const require = createRequire(import.meta.url);

type Json = Record<string, any>;

export interface Operation {
  operationId: string;
  method: string;
  template: string;
  /** the JSON pointer of the operation in the description */
  pointer: string;
  def: Json;
}

export interface MatchedRoute {
  op: Operation;
  params: Record<string, string>;
}

const esc = (s: string) => s.replace(/~/g, "~0").replace(/\//g, "~1");
const ptr = (...parts: string[]) => `#/${parts.map(esc).map(encodeURIComponent).join("/")}`;

let loaded: OpenApiJudge | undefined;

/** The description, loaded once per process (13 MB of JSON). */
export function openApiJudge(): OpenApiJudge {
  loaded ??= new OpenApiJudge();
  return loaded;
}

export class OpenApiJudge {
  readonly spec: Json;
  readonly version: string;
  private readonly ajv: any;
  private readonly routes: { method: string; segments: string[]; op: Operation; literal: number }[] = [];
  private readonly validators = new Map<string, ValidateFunction>();

  constructor() {
    const Ajv = require("ajv").default;
    const addFormats = require("ajv-formats").default;
    const path = require.resolve("@octokit/openapi/generated/api.github.com.json");
    this.spec = require(path);
    this.version = `${this.spec.openapi} ${this.spec.info?.version ?? ""}`.trim();
    // OpenAPI 3.0: `nullable: true` adds null to the allowed values, an `enum` included (GitHub
    // answers `conclusion: null` for a queued check run, whose enum lists no null). JSON Schema's
    // `enum` would refuse it, so null joins such enums.
    const walk = (x: unknown): void => {
      if (Array.isArray(x)) return x.forEach(walk);
      if (!x || typeof x !== "object") return;
      const o = x as Json;
      if (o.nullable === true && o.type === undefined) {
        // `nullable` beside `allOf`/`$ref` (no `type`): GitHub means "this, or null".
        const inner: Json = { ...o };
        delete inner.nullable;
        for (const k of Object.keys(o)) delete o[k];
        o.anyOf = [inner, { type: "null" }];
        walk(inner);
        return;
      }
      if (o.nullable === true && Array.isArray(o.enum) && !o.enum.includes(null)) o.enum.push(null);
      for (const v of Object.values(o)) walk(v);
    };
    walk(this.spec.components);
    walk(this.spec.paths);
    walk(this.spec["x-webhooks"]);
    // OpenAPI 3.0 schemas: `nullable`, `example`, `x-*` keywords, so not strict; formats checked.
    this.ajv = new Ajv({ strict: false, allErrors: true, validateSchema: false, discriminator: false });
    addFormats(this.ajv);
    // GitHub's own format: a repository's `owner/name`.
    this.ajv.addFormat("repo.nwo", /^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/);
    this.ajv.addSchema({ $id: "gh", paths: this.spec.paths, components: this.spec.components, "x-webhooks": this.spec["x-webhooks"] });
    for (const [template, item] of Object.entries<Json>(this.spec.paths)) {
      for (const method of ["get", "post", "put", "patch", "delete"]) {
        const def = item[method];
        if (!def) continue;
        const segments = template.split("/").slice(1);
        this.routes.push({
          method: method.toUpperCase(),
          segments,
          literal: segments.filter((s) => !s.startsWith("{")).length,
          op: { operationId: def.operationId, method: method.toUpperCase(), template, pointer: ptr("paths", template, method), def },
        });
      }
    }
    this.routes.sort((a, b) => b.literal - a.literal);
  }

  /** The operation a request is for, with its path parameters (decoded); undefined when none. */
  match(method: string, pathname: string): MatchedRoute | undefined {
    const parts = pathname.split("/").slice(1);
    for (const r of this.routes) {
      if (r.method !== method || r.segments.length !== parts.length) continue;
      const params: Record<string, string> = {};
      let ok = true;
      for (let i = 0; i < parts.length && ok; i++) {
        const s = r.segments[i]!;
        if (s.startsWith("{") && s.endsWith("}")) params[s.slice(1, -1)] = decodeURIComponent(parts[i]!);
        else ok = s === parts[i];
      }
      if (ok) return { op: r.op, params };
    }
    return undefined;
  }

  private deref(x: Json): Json {
    let cur = x;
    for (let i = 0; cur && typeof cur.$ref === "string" && i < 10; i++) {
      const parts = (cur.$ref as string)
        .replace(/^#\//, "")
        .split("/")
        .map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"));
      cur = parts.reduce((o: Json, p) => o?.[p], this.spec);
    }
    return cur;
  }

  private validator(pointer: string): ValidateFunction {
    let v = this.validators.get(pointer);
    if (!v) {
      v = this.ajv.compile({ $ref: `gh${pointer}` }) as ValidateFunction;
      this.validators.set(pointer, v);
    }
    return v;
  }

  private check(pointer: string, value: unknown, what: string): string[] {
    const v = this.validator(pointer);
    if (v(value)) return [];
    return (v.errors ?? [])
      .slice(0, 8)
      .map((e) => `${what}${e.instancePath || ""} ${e.message ?? "is invalid"}${e.params ? ` ${JSON.stringify(e.params)}` : ""}`);
  }

  private parameters(op: Operation): { def: Json; pointer: string }[] {
    return (op.def.parameters ?? []).map((p: Json, i: number) => {
      if (p.$ref)
        return {
          def: this.deref(p),
          pointer: `#/${(p.$ref as string).replace(/^#\//, "").split("/").map(encodeURIComponent).join("/")}/schema`,
        };
      return { def: p, pointer: `${op.pointer}/parameters/${i}/schema` };
    });
  }

  /** Violations of a request against its operation: parameters, query, body. */
  validateRequest(m: MatchedRoute, query: URLSearchParams, headers: IncomingHttpHeaders, body: unknown, rawBody: string): string[] {
    const out: string[] = [];
    const where = `${m.op.method} ${m.op.template} (${m.op.operationId})`;
    const params = this.parameters(m.op);
    const known = new Set<string>();
    for (const { def, pointer } of params) {
      const name = def.name as string;
      let raw: string | undefined;
      if (def.in === "path") raw = m.params[name];
      else if (def.in === "query") {
        known.add(name);
        raw = query.get(name) ?? undefined;
      } else if (def.in === "header") raw = headers[name.toLowerCase()] as string | undefined;
      else continue;
      if (raw === undefined) {
        if (def.required) out.push(`${where}: required ${def.in} parameter '${name}' missing`);
        continue;
      }
      const schema = this.deref(def.schema ?? {});
      const value =
        schema.type === "integer" || schema.type === "number"
          ? /^-?\d+(\.\d+)?$/.test(raw)
            ? Number(raw)
            : raw
          : schema.type === "boolean"
            ? raw === "true"
              ? true
              : raw === "false"
                ? false
                : raw
            : raw;
      out.push(...this.check(pointer, value, `${where}: ${def.in} parameter '${name}'`));
    }
    for (const k of query.keys()) if (!known.has(k)) out.push(`${where}: query parameter '${k}' is not in the description`);
    if (!headers["user-agent"]) out.push(`${where}: no User-Agent header (GitHub refuses such requests)`);
    const rb = m.op.def.requestBody ? this.deref(m.op.def.requestBody) : undefined;
    if (rb) {
      if (rawBody.length === 0) {
        if (rb.required) out.push(`${where}: the request body is required`);
      } else {
        const ct = String(headers["content-type"] ?? "");
        if (!ct.startsWith("application/json")) out.push(`${where}: request content-type '${ct}' is not application/json`);
        else if (body === undefined) out.push(`${where}: the request body is not JSON`);
        else if (rb.content?.["application/json"]?.schema)
          out.push(...this.check(`${m.op.pointer}/requestBody/content/application~1json/schema`, body, `${where}: request body`));
      }
    } else if (rawBody.length > 0 && !["GET", "DELETE"].includes(m.op.method)) {
      out.push(`${where}: a request body the operation does not define`);
    }
    return out;
  }

  /**
   * Violations of a response: its status must be one the operation defines (or a rate-limit /
   * credentials error, which GitHub documents for every operation, validated as a `basic-error`),
   * its body must match the schema, and the headers the operation defines must be present.
   */
  validateResponse(m: MatchedRoute, status: number, headers: OutgoingHttpHeaders, body: unknown): string[] {
    const out: string[] = [];
    const where = `${m.op.method} ${m.op.template} (${m.op.operationId}) → ${status}`;
    const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
    const responses = m.op.def.responses as Json;
    const declared = responses[String(status)];
    for (const h of [
      "x-github-request-id",
      "x-ratelimit-limit",
      "x-ratelimit-remaining",
      "x-ratelimit-reset",
      "x-ratelimit-used",
      "x-ratelimit-resource",
      "x-github-api-version-selected",
    ])
      if (lower[h] === undefined) out.push(`${where}: header '${h}' missing (GitHub sends it on every API response)`);
    if (!declared) {
      if (status === 401 || status === 403 || status === 429) {
        out.push(...this.check(ptr("components", "schemas", "basic-error"), body, `${where}: body`));
        if (status === 429 || (status === 403 && /rate limit/i.test(String((body as Json)?.message ?? "")))) {
          if (lower["retry-after"] === undefined && lower["x-ratelimit-remaining"] !== "0")
            out.push(`${where}: a rate-limit answer without retry-after or x-ratelimit-remaining: 0`);
        }
        return out;
      }
      return [`${where}: status ${status} is not a response the description defines (${Object.keys(responses).join(", ")})`];
    }
    const resp = this.deref(declared);
    const respPointer = declared.$ref
      ? `#/${(declared.$ref as string).replace(/^#\//, "").split("/").map(encodeURIComponent).join("/")}`
      : `${m.op.pointer}/responses/${status}`;
    const json = resp.content?.["application/json"] ?? resp.content?.["application/scim+json"];
    if (json?.schema) {
      const ct = String(lower["content-type"] ?? "");
      if (!ct.startsWith("application/json")) out.push(`${where}: content-type '${ct}' is not application/json`);
      out.push(...this.check(`${respPointer}/content/application~1json/schema`, body, `${where}: body`));
    } else if (body !== undefined && status === 204) {
      out.push(`${where}: a 204 with a body`);
    }
    // Headers the operation defines: none is marked required (GitHub sends `Link` only when there is
    // another page), but a created resource's `Location` is always sent; each present one must match.
    for (const [name, h] of Object.entries<Json>(resp.headers ?? {})) {
      const value = lower[name.toLowerCase()];
      if (value === undefined) {
        if (name.toLowerCase() === "location" || this.deref(h).required)
          out.push(`${where}: header '${name}' the description defines is missing`);
        continue;
      }
      const schema = this.deref(this.deref(h).schema ?? {});
      if (schema.type === "string" && typeof value !== "string") out.push(`${where}: header '${name}' is not a string`);
      if (schema.type === "integer" && !/^\d+$/.test(String(value))) out.push(`${where}: header '${name}' is not an integer`);
    }
    return out;
  }

  /** Violations of a webhook delivery against the description's `x-webhooks` entry for it. */
  validateWebhook(key: string, headers: Record<string, string>, payload: unknown): string[] {
    const def = this.spec["x-webhooks"]?.[key]?.post;
    if (!def) return [`webhook '${key}' is not in the description`];
    const out: string[] = [];
    const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
    for (const p of def.parameters ?? []) {
      const d = this.deref(p);
      if (d.in === "header" && d.required !== false && lower[String(d.name).toLowerCase()] === undefined)
        out.push(`webhook ${key}: header '${d.name}' missing`);
    }
    out.push(
      ...this.check(`${ptr("x-webhooks", key, "post")}/requestBody/content/application~1json/schema`, payload, `webhook ${key}: payload`),
    );
    return out;
  }
}
