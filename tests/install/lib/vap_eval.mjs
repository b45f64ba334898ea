// Checks the chart's ValidatingAdmissionPolicy offline: no API server can run
// here, so a JavaScript CEL implementation (@marcbachmann/cel-js, installed in
// .tools/cel by tests/lib/deps.sh) stands in for the API server's cel-go.
//
//   node vap_eval.mjs RENDER.json --user U --label L --condition T [--annotation A]
//
// RENDER.json is a render from tests/install/lib/render.bash (a JSON list of
// every manifest). Prints one line per check, "PASS<TAB>what" or
// "FAIL<TAB>what: why"; tests/install/helm.sh turns them into TAP.
//
// 1. Every CEL expression of the policy (match conditions, variables,
//    validations, message expressions) parses and type-checks, with object,
//    oldObject, request and variables declared dyn as the API server declares
//    object and oldObject.
// 2. The policy is evaluated the way the API server does (match conditions,
//    then variables, then validations in order; an evaluation error refuses,
//    as failurePolicy: Fail does) against admission requests built from what
//    the agent sends (agent/k8s/k8s.c: the JSON merge patches of the label and
//    of the condition list, the Event), applied with RFC 7386 to a Node shaped
//    like one the API server hands to admission, and against the writes a
//    stolen agent token could try.
//
// What this does not prove: cel-go and this implementation agree on the CEL
// used here (optional fields and indexes, comprehensions over maps and lists,
// list concatenation, join, heterogeneous equality), but the API server's type
// checker, cost budget and the exact shape of the admitted objects were not
// exercised against a real kube-apiserver.
import { pathToFileURL } from 'node:url'
import { readFileSync } from 'node:fs'

const root = process.env.EP_ROOT || process.cwd()
const celPath = `${root}/.tools/cel/node_modules/@marcbachmann/cel-js/lib/index.js`
let Environment
try {
  ({ Environment } = await import(pathToFileURL(celPath).href))
} catch (e) {
  console.log(`FAIL\tCEL implementation loaded from ${celPath} (make deps installs it): ${e.message}`)
  process.exit(1)
}

const args = process.argv.slice(2)
const file = args.shift()
const opt = {}
while (args.length) { const k = args.shift().replace(/^--/, ''); opt[k] = args.shift() }
for (const k of ['user', 'label', 'condition']) {
  if (!opt[k]) { console.error(`vap_eval: --${k} missing`); process.exit(2) }
}

let failed = 0
const pass = what => console.log(`PASS\t${what}`)
const fail = (what, why) => { failed++; console.log(`FAIL\t${what}: ${String(why).split('\n')[0]}`) }

const docs = JSON.parse(readFileSync(file, 'utf8')).docs
const policy = docs.find(d => d.kind === 'ValidatingAdmissionPolicy')
if (!policy) { fail('a ValidatingAdmissionPolicy is rendered', 'none'); process.exit(1) }
const spec = policy.spec

// --- 1. every expression compiles ------------------------------------------
const env = new Environment({ enableOptionalTypes: true })
for (const v of ['object', 'oldObject', 'request', 'variables']) env.registerVariable(v, 'dyn')
const exprs = [
  ...(spec.matchConditions || []).map(m => [`matchConditions[${m.name}]`, m.expression, 'bool']),
  ...(spec.variables || []).map(v => [`variables.${v.name}`, v.expression, null]),
  ...(spec.validations || []).flatMap((v, i) => [
    [`validations[${i}].expression`, v.expression, 'bool'],
    ...(v.messageExpression ? [[`validations[${i}].messageExpression`, v.messageExpression, 'string']] : []),
  ]),
]
const compiled = new Map()
let compileErrors = []
for (const [where, src, want] of exprs) {
  try {
    const r = env.check(src)
    if (!r.valid) throw r.error
    if (want && r.type !== want && r.type !== 'dyn') throw new Error(`type ${r.type}, want ${want}`)
    compiled.set(src, env.parse(src))
  } catch (e) {
    compileErrors.push(`${where}: ${String(e.message).split('\n')[0]}`)
  }
}
if (compileErrors.length) fail(`all ${exprs.length} CEL expressions of the policy parse and type-check`, compileErrors.join('; '))
else pass(`all ${exprs.length} CEL expressions of the policy parse and type-check (${spec.variables.length} variables, ${spec.validations.length} validations, ${spec.matchConditions.length} match condition)`)

// --- 2. evaluation ------------------------------------------------------------
const run = (src, ctx) => (compiled.get(src) || env.parse(src))(ctx)

// The API server's order: match conditions (false: the policy does not apply;
// an error: failurePolicy), variables (lazily: an error matters only where
// it is used), validations in order, the first false one refuses.
function admit(request, object, oldObject) {
  const ctx = { request, object, oldObject, variables: {} }
  try {
    for (const m of spec.matchConditions || []) {
      if (run(m.expression, ctx) !== true) return { applies: false, allowed: true }
    }
  } catch (e) {
    return { applies: true, allowed: spec.failurePolicy !== 'Fail', message: `match condition error: ${e.message}` }
  }
  const errs = {}
  for (const v of spec.variables || []) {
    try { ctx.variables[v.name] = run(v.expression, ctx) } catch (e) { errs[v.name] = e.message }
  }
  for (const [i, v] of (spec.validations || []).entries()) {
    let ok
    try { ok = run(v.expression, ctx) } catch (e) {
      const used = Object.keys(errs).filter(n => v.expression.includes(`variables.${n}`))
      return { applies: true, allowed: spec.failurePolicy !== 'Fail', validation: i,
        message: `evaluation error: ${e.message.split('\n')[0]}${used.length ? ` (variables ${used.map(n => `${n}: ${errs[n].split('\n')[0]}`).join(', ')})` : ''}` }
    }
    if (ok !== true) {
      let message = v.message
      if (v.messageExpression) {
        try { message = run(v.messageExpression, ctx) } catch (e) { message = `${v.message || ''} [messageExpression error: ${e.message.split('\n')[0]}]` }
      }
      return { applies: true, allowed: false, validation: i, message, reason: v.reason }
    }
  }
  return { applies: true, allowed: true }
}

// RFC 7386 JSON merge patch, as the API server applies the agent's PATCHes.
function mergePatch(target, patch) {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return structuredClone(patch)
  const out = (target && typeof target === 'object' && !Array.isArray(target)) ? structuredClone(target) : {}
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k]
    else out[k] = mergePatch(out[k], v)
  }
  return out
}

// A Node as admission sees it (a v1 Node converted to unstructured).
function node(name) {
  const t = '2026-01-01T00:00:00Z'
  const cond = (type, status, reason) => ({ type, status, reason, message: `kubelet: ${reason}`, lastHeartbeatTime: t, lastTransitionTime: t })
  return {
    apiVersion: 'v1', kind: 'Node',
    metadata: {
      name, uid: `0000-${name}`, resourceVersion: '1000', creationTimestamp: t,
      labels: { 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', 'node-role.kubernetes.io/edge': '' },
      annotations: { 'node.alpha.kubernetes.io/ttl': '0', 'volumes.kubernetes.io/controller-managed-attach-detach': 'true' },
      managedFields: [{ manager: 'kubelet', operation: 'Update', apiVersion: 'v1', time: t, fieldsType: 'FieldsV1', fieldsV1: { 'f:status': {} } }],
    },
    spec: { podCIDR: '10.244.1.0/24', podCIDRs: ['10.244.1.0/24'], providerID: `edge://${name}`,
      taints: [{ key: 'node-role.kubernetes.io/edge', effect: 'NoSchedule' }] },
    status: {
      capacity: { cpu: '4', memory: '8Gi', pods: '110' },
      allocatable: { cpu: '4', memory: '7Gi', pods: '110' },
      conditions: [cond('MemoryPressure', 'False', 'KubeletHasSufficientMemory'),
        cond('DiskPressure', 'False', 'KubeletHasNoDiskPressure'),
        cond('PIDPressure', 'False', 'KubeletHasSufficientPID'),
        cond('Ready', 'True', 'KubeletReady')],
      addresses: [{ type: 'InternalIP', address: '10.0.0.11' }, { type: 'Hostname', address: name }],
      daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
      nodeInfo: { kubeletVersion: 'v1.30.0', osImage: 'Debian GNU/Linux 12 (bookworm)', architecture: 'amd64' },
      images: [{ names: ['registry.k8s.io/pause:3.9'], sizeBytes: 321520 }],
    },
  }
}

const SA = opt.user
const L = opt.label
const T = opt.condition
const bound = n => ({ 'authentication.kubernetes.io/node-name': [n], 'authentication.kubernetes.io/node-uid': [`0000-${n}`],
  'authentication.kubernetes.io/pod-name': [`edgeplane-${n}`], 'authentication.kubernetes.io/pod-uid': ['p-1'],
  'authentication.kubernetes.io/credential-id': ['JTI=1'] })
const user = (username, extra) => ({ username, uid: 'u-1', groups: ['system:serviceaccounts', 'system:authenticated'], extra })
const nodeReq = (name, sub, who) => ({ kind: { group: '', version: 'v1', kind: 'Node' }, resource: { group: '', version: 'v1', resource: 'nodes' },
  subResource: sub, name, namespace: '', operation: 'UPDATE', userInfo: who, dryRun: false })
const eventReq = who => ({ kind: { group: '', version: 'v1', kind: 'Event' }, resource: { group: '', version: 'v1', resource: 'events' },
  subResource: '', name: '', namespace: 'default', operation: 'CREATE', userInfo: who, dryRun: false })

// The API server's own changes on every write: a new resourceVersion and a
// managedFields entry for the writer.
function written(old, patch) {
  const n = mergePatch(old, patch)
  n.metadata.resourceVersion = String(Number(old.metadata.resourceVersion) + 1)
  n.metadata.managedFields = [...old.metadata.managedFields,
    { manager: 'edgeplane-agent', operation: 'Update', apiVersion: 'v1', time: '2026-01-01T00:01:00Z', fieldsType: 'FieldsV1', fieldsV1: {} }]
  return n
}
// The agent's condition list (k8s.c build_conditions): the Node's list with
// ours replaced in place, or appended.
function withCondition(old, status) {
  const mine = { type: T, status, reason: status === 'False' ? 'DNSFailover' : 'DNSHealthy', message: 'upstream DNS',
    lastHeartbeatTime: '2026-01-01T00:01:00Z', lastTransitionTime: '2026-01-01T00:01:00Z' }
  const conds = old.status.conditions.map(c => c.type === T ? mine : c)
  if (!conds.some(c => c.type === T)) conds.push(mine)
  return { metadata: { resourceVersion: old.metadata.resourceVersion }, status: { conditions: conds } }
}
const agentEvent = (about, kind = 'Node') => ({ apiVersion: 'v1', kind: 'Event', metadata: { name: `${about}.18a0`, namespace: 'default' },
  involvedObject: { apiVersion: 'v1', kind, name: about, uid: `0000-${about}` }, reason: 'DNSFailover', message: 'upstream DNS failed',
  type: 'Warning', source: { component: 'edgeplane-agent', host: about }, count: 1,
  reportingComponent: 'edgeplane-agent', reportingInstance: about })

const n1 = node('edge-1')
const labelled = mergePatch(n1, { metadata: { labels: { [L]: 'true' } } })
const failedOver = mergePatch(n1, withCondition(n1, 'False'))
const agent = user(SA, bound('edge-1'))

// [what, request, object, oldObject, expect: 'allow' | 'skip' | /message/]
const cases = [
  ['the agent sets its label on its own Node (merge patch on nodes)', nodeReq('edge-1', '', agent),
    written(n1, { metadata: { labels: { [L]: 'true' } } }), n1, 'allow'],
  ['the agent removes its label (merge patch with null)', nodeReq('edge-1', '', agent),
    written(labelled, { metadata: { labels: { [L]: null } } }), labelled, 'allow'],
  ['the agent adds its condition (nodes/status, full list + resourceVersion)', nodeReq('edge-1', 'status', agent),
    written(n1, withCondition(n1, 'False')), n1, 'allow'],
  ['the agent flips its condition back to True', nodeReq('edge-1', 'status', agent),
    written(failedOver, withCondition(failedOver, 'True')), failedOver, 'allow'],
  ['the agent posts an Event about its own Node', eventReq(agent), agentEvent('edge-1'), null, 'allow'],
  ['the kubelet (another user) is not subject to the policy', nodeReq('edge-1', 'status', user('system:node:edge-1', {})),
    written(n1, { status: { addresses: [] } }), n1, 'skip'],
  ['another service account is not subject to the policy', nodeReq('edge-1', '', user('system:serviceaccount:kube-system:other', bound('edge-1'))),
    written(n1, { metadata: { labels: { x: 'y' } } }), n1, 'skip'],
  ['refused: a token without a node-name claim', nodeReq('edge-1', '', user(SA, {})),
    written(n1, { metadata: { labels: { [L]: 'true' } } }), n1, /no node-name claim/],
  ['refused: the agent of edge-2 labels edge-1', nodeReq('edge-1', '', user(SA, bound('edge-2'))),
    written(n1, { metadata: { labels: { [L]: 'true' } } }), n1, /agent on node edge-2 may write only its own Node, not edge-1/],
  ['refused: the agent of edge-2 writes the condition of edge-1', nodeReq('edge-1', 'status', user(SA, bound('edge-2'))),
    written(n1, withCondition(n1, 'False')), n1, /may write only its own Node/],
  ['refused: another label added', nodeReq('edge-1', '', agent),
    written(n1, { metadata: { labels: { 'node-role.kubernetes.io/control-plane': '' } } }), n1, /only the label .* not node-role.kubernetes.io\/control-plane/],
  ['refused: another label removed', nodeReq('edge-1', '', agent),
    written(n1, { metadata: { labels: { 'node-role.kubernetes.io/edge': null } } }), n1, /not node-role.kubernetes.io\/edge/],
  ['refused: another label changed along with ours', nodeReq('edge-1', '', agent),
    written(n1, { metadata: { labels: { [L]: 'true', 'kubernetes.io/hostname': 'x' } } }), n1, /not kubernetes.io\/hostname/],
  ['refused: our label with a value other than "true"', nodeReq('edge-1', '', agent),
    written(n1, { metadata: { labels: { [L]: 'false' } } }), n1, /may only be "true" or absent/],
  ['refused: an annotation added', nodeReq('edge-1', '', agent),
    written(n1, { metadata: { annotations: { 'example.com/x': 'y' } } }), n1, /may not change the annotations example.com\/x/],
  ['refused: an owner reference added (the garbage collector would delete the Node)', nodeReq('edge-1', '', agent),
    written(n1, { metadata: { ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'gone', uid: 'x' }] } }), n1, /metadata.ownerReferences/],
  ['refused: a finalizer added', nodeReq('edge-1', '', agent),
    written(n1, { metadata: { finalizers: ['example.com/block'] } }), n1, /metadata.finalizers/],
  ['refused: spec changed (cordon)', nodeReq('edge-1', '', agent),
    written(n1, { spec: { unschedulable: true } }), n1, /may not change its Node's spec/],
  ['refused: spec changed (taints removed)', nodeReq('edge-1', '', agent),
    written(n1, { spec: { taints: null } }), n1, /spec/],
  ['refused: status addresses changed (nodes/status)', nodeReq('edge-1', 'status', agent),
    written(n1, { status: { addresses: [{ type: 'InternalIP', address: '192.0.2.66' }] } }), n1, /not status.addresses/],
  ['refused: status capacity changed along with our condition', nodeReq('edge-1', 'status', agent),
    written(n1, mergePatch(withCondition(n1, 'False'), { status: { capacity: { cpu: '64' } } })), n1, /not status.capacity/],
  ['refused: the kubelet\'s Ready condition changed', nodeReq('edge-1', 'status', agent),
    written(n1, { status: { conditions: n1.status.conditions.map(c => c.type === 'Ready' ? { ...c, status: 'False' } : c) } }), n1, /only the Node condition .*the kubelet's/],
  ['refused: the kubelet\'s conditions dropped (a list written without them)', nodeReq('edge-1', 'status', agent),
    written(n1, { status: { conditions: [{ type: T, status: 'False', reason: 'DNSFailover' }] } }), n1, /only the Node condition/],
  ['refused: an Event about another Node', eventReq(agent), agentEvent('edge-2'), null, /may write only its own Node, not edge-2/],
  ['refused: an Event about a Pod named like the node', eventReq(agent), agentEvent('edge-1', 'Pod'), null, /Events only about its own Node/],
  ['refused: an Event from a token without a node-name claim', eventReq(user(SA, {})), agentEvent('edge-1'), null, /no node-name claim/],
]
if (opt.annotation) {
  cases.push(['the agent sets an owned annotation (' + opt.annotation + ')', nodeReq('edge-1', '', agent),
    written(n1, { metadata: { annotations: { [opt.annotation]: 'abc' } } }), n1, 'allow'])
  cases.push(['refused: an owned annotation on another Node', nodeReq('edge-1', '', user(SA, bound('edge-2'))),
    written(n1, { metadata: { annotations: { [opt.annotation]: 'abc' } } }), n1, /may write only its own Node/])
}

for (const [what, req, obj, old, expect] of cases) {
  const r = admit(req, obj, old)
  const got = !r.applies ? 'not subject to the policy' : r.allowed ? 'allowed' : `refused: ${r.message}`
  if (expect === 'allow') (r.applies && r.allowed) ? pass(`${what}: allowed`) : fail(what, `want allowed, got ${got}`)
  else if (expect === 'skip') !r.applies ? pass(`${what}`) : fail(what, `want not subject to the policy, got ${got}`)
  else if (r.applies && !r.allowed && expect.test(r.message || '')) pass(`${what} -- "${r.message}"`)
  else fail(what, `want refused with /${expect.source}/, got ${got}`)
}
process.exit(failed ? 1 : 0)
