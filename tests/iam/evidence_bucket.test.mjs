// The evidence bucket's policy (cloudformation/deploy_evidence.yaml) against its rows of the
// decision table (scripts/lib/iam_cases.json, "evidence_bucket"), evaluated by a real IAM policy
// evaluator: a caller in another account, whose own identity policy allows every S3 action, asks
// for an object of the central bucket; only the bucket policy can refuse it. Run by `make iam-table`.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { decide as simulate } from './simulate.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const python = process.env.REAPER_PYTHON || 'python3'
const plan = JSON.parse(execFileSync(python, [join(root, 'scripts', 'lib', 'check_iam.py'), 'plan'],
  { encoding: 'utf8', maxBuffer: 64 << 20 })).evidence

const adminEverywhere = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:*', Resource: '*' }] }

const decide = (c) => simulate({
  name: c.name, identityPolicies: [{ name: 'member-admin', policy: adminEverywhere }],
  resourcePolicy: plan.policy, principal: c.principal, account: plan.account,
  action: c.action, resource: c.resource, context: c.context,
})

test('the table has the evidence bucket rows', () => {
  assert.ok(plan.cases.length >= 10, `${plan.cases.length} rows`)
  assert.ok(plan.cases.some((c) => c.expected === 'allowed') && plan.cases.some((c) => c.expected === 'denied'))
})

for (const c of plan.cases) {
  test(`evidence bucket: ${c.name}`, async () => {
    assert.equal(await decide(c), c.expected, `${c.name} (${c.action} ${c.resource}) ${c.why}`)
  })
}

test('without the bucket policy a cross-account write is refused, so the rows test the policy', async () => {
  const own = plan.cases.find((c) => c.name === 'write-own-evidence')
  const saved = plan.policy
  plan.policy = { Version: '2012-10-17', Statement: [{ Sid: 'Nothing', Effect: 'Deny', Principal: '*', Action: 's3:GetBucketTagging', Resource: 'arn:aws:s3:::reportbucket' }] }
  try {
    assert.equal(await decide(own), 'denied')
  } finally {
    plan.policy = saved
  }
})
