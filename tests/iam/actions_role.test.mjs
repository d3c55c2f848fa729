// The owner-actions role of each member account (cloudformation/deploy_reaper.yaml, ActionsRole)
// against its rows of the decision table (scripts/lib/iam_cases.json, "actions_role"), evaluated
// by a real IAM policy evaluator as the role's own identity policy. Run by `make iam-table`.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { decide as simulate } from './simulate.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const python = process.env.REAPER_PYTHON || 'python3'
const plan = JSON.parse(execFileSync(python, [join(root, 'scripts', 'lib', 'check_iam.py'), 'plan'],
  { encoding: 'utf8', maxBuffer: 64 << 20 })).actions

const decide = (c) => simulate({
  name: c.name, identityPolicies: [{ name: 'actions-role', policy: plan.policy }],
  principal: `arn:aws:iam::${plan.account}:role/ec2-reaper-actions-eu-west-1`, account: plan.account,
  action: c.action, resource: c.resource, context: c.context,
})

test('the table has the actions role rows, allowed and denied', () => {
  assert.ok(plan.cases.length >= 8)
  assert.ok(plan.cases.some((c) => c.expected === 'allowed') && plan.cases.some((c) => c.expected === 'denied'))
})

for (const c of plan.cases) {
  test(`actions role: ${c.name}`, async () => {
    assert.equal(await decide(c), c.expected, `${c.name} (${c.action}) ${c.why}`)
  })
}

// The role's trust policy: a caller whose own policy allows AssumeRole anywhere; only the trust decides.
const assumeAnything = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 'sts:AssumeRole', Resource: '*' }] }

test('the trust has rows, allowed and denied', () => {
  assert.ok(plan.trust_cases.length >= 4)
  assert.ok(plan.trust_cases.some((c) => c.expected === 'allowed') && plan.trust_cases.some((c) => c.expected === 'denied'))
})

for (const c of plan.trust_cases) {
  test(`actions role trust: ${c.name}`, async () => {
    const got = await simulate({
      name: c.name, identityPolicies: [{ name: 'caller', policy: assumeAnything }], resourcePolicy: plan.trust,
      principal: c.principal, account: plan.account, action: 'sts:AssumeRole', resource: c.resource, context: c.context,
    })
    assert.equal(got, c.expected, `${c.name} ${c.why}`)
  })
}
