// One request through a real IAM policy evaluator (@cloud-copilot/iam-simulate), shared by the
// decision-table tests: 'allowed' or 'denied'. A request the evaluator cannot take, or a context
// key it ignores for the action, is an error: the row would otherwise test nothing.
import { runSimulation } from '@cloud-copilot/iam-simulate'

export async function decide({ name, identityPolicies, resourcePolicy, principal, account, action, resource, context }) {
  const r = await runSimulation({
    identityPolicies,
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    ...(resourcePolicy ? { resourcePolicy } : {}),
    request: { action, principal, resource: { accountId: account, resource }, contextVariables: context },
  }, { simulationMode: 'Strict' })
  if (r.resultType === 'error') throw new Error(`${name}: the evaluator refused the request: ${JSON.stringify(r.errors)}`)
  const ignored = r.resultType === 'single' ? r.result.ignoredContextKeys : r.results.flatMap((x) => x.ignoredContextKeys)
  if (ignored.length) throw new Error(`${name}: the evaluator ignores ${ignored.join(', ')} for ${action}; fix the row`)
  return r.overallResult === 'Allowed' ? 'allowed' : 'denied'
}
