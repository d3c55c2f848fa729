// The central owner-actions function's role (cloudformation/deploy_actions.yaml, Role) against its
// rows of the decision table (scripts/lib/iam_cases.json, "actions_function"), evaluated by a real
// IAM policy evaluator as the role's own identity policy. Run by `make iam-table`.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { decide as simulate } from './simulate.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const python = process.env.REAPER_PYTHON || 'python3'
const plan = JSON.parse(execFileSync(python, [join(root, 'scripts', 'lib', 'check_iam.py'), 'plan'],
  { encoding: 'utf8', maxBuffer: 64 << 20 })).actions_function

const decide = (c) => simulate({
  name: c.name, identityPolicies: [{ name: 'actions-function', policy: plan.policy }],
  principal: `arn:aws:iam::${plan.account}:role/ec2-reaper-actions-function`, account: plan.account,
  action: c.action, resource: c.resource, context: c.context,
})

test('the table has the function role rows, allowed and denied', () => {
  assert.ok(plan.cases.length >= 10)
  assert.ok(plan.cases.some((c) => c.expected === 'allowed') && plan.cases.some((c) => c.expected === 'denied'))
})

test('the role grants no EC2 action at all', () => {
  const actions = plan.policy.Statement.flatMap((s) => [].concat(s.Action))
  assert.deepEqual(actions.filter((a) => a.startsWith('ec2:')), [])
})

for (const c of plan.cases) {
  test(`actions function: ${c.name}`, async () => {
    assert.equal(await decide(c), c.expected, `${c.name} (${c.action}) ${c.why}`)
  })
}
