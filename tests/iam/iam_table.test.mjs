// The reaper role's IAM decision table (scripts/lib/iam_cases.json), evaluated by a real IAM
// policy evaluator: every case against the role's policy rendered for every combination of the
// template's switches (scripts/lib/check_iam.py plan). Run by `make iam-table` (part of `make lint`):
//   node --test tests/iam/
// REAPER_PYTHON names the Python that renders (the project venv's; default python3).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { decide as simulate } from './simulate.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const python = process.env.REAPER_PYTHON || 'python3'
const checkIam = join(root, 'scripts', 'lib', 'check_iam.py')
const run = (...args) => execFileSync(python, [checkIam, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 })
const plan = JSON.parse(run('plan'))

// One request against one rendered policy, as the role's own identity policy (no SCP, no
// resource policy, same account).
const decide = (policy, c) => simulate({
  name: c.name, identityPolicies: [{ name: 'reaper-role', policy }],
  principal: `arn:aws:iam::${plan.account}:role/StackSet-ec2-reaper-Role`, account: plan.account,
  action: c.action, resource: c.resource, context: c.context,
})

const wrong = new Map()
for (const c of plan.cases) {
  test(c.name, async () => {
    const misses = []
    for (const [i, combo] of plan.combinations.entries()) {
      const got = await decide(combo.policy, c)
      if (got !== c.expected[i]) misses.push(`${combo.label}: ${got}, expected ${c.expected[i]}`)
    }
    if (misses.length) wrong.set(c.name, misses.length)
    assert.deepEqual(misses, [], `${c.name} (${c.action}) ${c.why}`)
  })
}

test('a context key the evaluator ignores fails the row instead of testing nothing', async () => {
  const policy = plan.combinations[0].policy
  const c = { name: 'probe', action: 'ec2:TerminateInstances', resource: plan.cases[0].resource,
    context: { 'ec2:ResourceTag/termination_date': '2020-01-01T00:00:00Z', 'ses:FromAddress': 'reaper@example.com' } }
  await assert.rejects(decide(policy, c), /ignores ses:FromAddress/)
})

// The table names a few case variants of indefinite; this proves all 1024 of them (SPEC §2: the
// keyword is case-sensitive, so only the exact word is indefinite and every other spelling is an
// invalid tag, stopped and never terminated), for terminating and for stamping a date from lifetime.
test('every case variant of indefinite, as termination_date and as lifetime', async () => {
  const variants = Array.from({ length: 1 << 10 }, (_, bits) =>
    [...'indefinite'].map((ch, i) => (bits >> i) & 1 ? ch.toUpperCase() : ch).join(''))
  const combos = plan.combinations.filter((c) => /ReportBucket=- NoticeFrom=-$/.test(c.label) && c.label.startsWith('SkipManaged=true'))
  assert.equal(combos.length, 2)
  const instance = plan.cases.find((c) => c.name === 'terminate-dated').resource
  const misses = []
  for (const combo of combos) {
    const indefiniteEnds = combo.label.includes('AllowIndefinite=false')
    for (const v of variants) {
      const want = v === 'indefinite' && indefiniteEnds ? 'allowed' : 'denied'
      const terminate = { name: `terminate ${v}`, action: 'ec2:TerminateInstances', resource: instance,
        // Announced, so that only termination_date decides (the notice gate has its own rows).
        context: { 'ec2:ResourceTag/termination_date': v, 'aws:ResourceTag/termination_date': v,
          'ec2:ResourceTag/reaper:announced': `terminate 2030-01-01T00:00:00Z told 2029-12-31T00:00:00Z`,
          'aws:ResourceTag/reaper:announced': `terminate 2030-01-01T00:00:00Z told 2029-12-31T00:00:00Z` } }
      const stamp = { name: `stamp over lifetime=${v}`, action: 'ec2:CreateTags', resource: instance,
        context: { 'ec2:ResourceTag/lifetime': v, 'aws:ResourceTag/lifetime': v,
          'aws:RequestTag/termination_date': '2000-01-01T00:00:00Z', 'aws:TagKeys': ['termination_date'] } }
      for (const c of [terminate, stamp]) {
        const got = await decide(combo.policy, c)
        if (got !== want) misses.push(`${combo.label}: ${c.name}: ${got}, expected ${want}`)
      }
    }
  }
  assert.deepEqual(misses, [])
})

test('docs/IAM.md lists exactly the table', () => {
  const doc = readFileSync(join(root, 'docs', 'IAM.md'), 'utf8')
  assert.equal(doc, run('doc'), 'docs/IAM.md differs from the table: python3 scripts/lib/check_iam.py doc > docs/IAM.md')
})

test('the table has at least 40 rows and every switch changes some decision', () => {
  assert.ok(plan.cases.length >= 40, `${plan.cases.length} rows`)
  const switches = new Set(plan.combinations[0].label.split(' ').map((kv) => kv.split('=')[0]))
  for (const s of switches) {
    const varies = plan.cases.some((c) => {
      const byOthers = new Map()
      plan.combinations.forEach((combo, i) => {
        const others = combo.label.split(' ').filter((kv) => !kv.startsWith(`${s}=`)).join(' ')
        byOthers.set(others, [...(byOthers.get(others) || []), c.expected[i]])
      })
      return [...byOthers.values()].some((ds) => new Set(ds).size > 1)
    })
    assert.ok(varies, `no row depends on ${s}: the switch is untested`)
  }
})

test.after(() => {
  const total = plan.cases.length * plan.combinations.length
  const bad = [...wrong.values()].reduce((a, b) => a + b, 0)
  console.log(`iam-table: ${total - bad} of ${total} decisions as expected (${plan.cases.length} rows x ${plan.combinations.length} switch combinations)` +
    (wrong.size ? `; ${wrong.size} rows wrong: ${[...wrong].map(([n, k]) => `${n} (${k})`).join(', ')}` : ''))
})
