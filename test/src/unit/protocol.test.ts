import assert from "node:assert/strict";
import { test } from "node:test";
import { parseLease } from "@optimus/shared";

const spec = { id: "u1", goal: "g", role: "codegen", files: [], dependsOn: [], priority: 0, complexity: "small", kind: "change" };
const lease = {
  taskId: "t",
  unitId: "u1",
  attempt: 1,
  leaseId: "t/u1#1",
  expiresAt: 1,
  spec,
  context: { base: { branch: "optimus/t" }, feedback: ["fix it"] },
};

test("a worker reads the lease a farm sends; fields it does not know are ignored; a skewed lease is refused, naming the field", () => {
  const ok = parseLease(lease);
  assert.ok(ok.ok);
  assert.equal(ok.ok && ok.lease.context?.base?.branch, "optimus/t");
  // A newer farm adds a field: an older worker still reads the lease.
  assert.ok(parseLease({ ...lease, context: { ...lease.context, somethingNew: { x: 1 } }, priorityHint: 3 }).ok);
  // A farm that sends the context in another shape (another version): refused with the field and the likely cause.
  const skew = parseLease({ ...lease, context: { base: "optimus/t" } });
  assert.equal(skew.ok, false);
  assert.match(
    !skew.ok ? skew.error : "",
    /^the farm sent a lease this worker cannot read \(context\.base: .*\): are the farm and this worker the same version of Optimus\?$/,
  );
  const noSpec = parseLease({ ...lease, spec: undefined });
  assert.match(!noSpec.ok ? noSpec.error : "", /\(spec: /);
});
