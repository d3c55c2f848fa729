"""The reaper role's IAM decision table (iam_cases.json beside this file): the role's policy
rendered from deploy_reaper.yaml for every combination of the table's switches, and the decision
each case must get under each.

  check_iam.py list                      the cases and their decisions (no AWS; scripts/check-iam --dry-run)
  check_iam.py plan                      every combination's policy and every case's request and
                                         expected decision as JSON, for the evaluator in tests/iam
  check_iam.py doc                       the table as Markdown (docs/IAM.md; tests/iam checks it)
  check_iam.py simulate --account ID --region R
                                         each case through `aws iam simulate-custom-policy`
                                         (real IAM: conditions evaluated); exit 1 on any mismatch
stdlib + PyYAML only.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cfn_render  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = os.path.join(HERE, "..", "..", "cloudformation", "deploy_reaper.yaml")
EVIDENCE_TEMPLATE = os.path.join(HERE, "..", "..", "cloudformation", "deploy_evidence.yaml")
EVIDENCE_ORG, EVIDENCE_ACCOUNT = "o-a1b2c3d4e5", "333333333333"
# The webhook is the Organization's one secret, in another region than the function (eu-west-1).
WEBHOOK_SECRET = "arn:aws:secretsmanager:us-east-1:111122223333:secret:reaper-webhook-AbCdEf"
WEBHOOK_KEY = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
BASE = {
    "ArtifactBucketPrefix": "acme-reaper",
    "ArtifactKey": "reaper/v1/bootstrap.zip",
    "SlackWebhookSecretArn": WEBHOOK_SECRET,
    "SlackWebhookSecretKmsKeyArn": WEBHOOK_KEY,
    "LinkKeyArn": "arn:aws:secretsmanager:us-east-1:111122223333:secret:ec2-reaper/link-key-AbCdEf",
    "ActionsUrl": "https://abcdefghij.lambda-url.us-east-1.on.aws/",
}
ACCOUNT, REGION = "123456789012", "eu-west-1"
DECISIONS = ("allowed", "denied")
# Resource kinds a case may name instead of an ARN.
KINDS = {
    "instance": "arn:{partition}:ec2:{region}:{account}:instance/i-0123456789abcdef0",
    "volume": "arn:{partition}:ec2:{region}:{account}:volume/vol-0123456789abcdef0",
    "image": "arn:{partition}:ec2:{region}::image/ami-0123456789abcdef0",
    "snapshot": "arn:{partition}:ec2:{region}::snapshot/snap-0123456789abcdef0",
}


class TableError(Exception):
    pass


def table() -> dict:
    with open(os.path.join(HERE, "iam_cases.json"), encoding="utf-8") as f:
        t = json.load(f)
    _validate(t)
    return t


def _validate(t: dict) -> None:
    switches = t["switches"]
    seen = set()
    for c in t["cases"]:
        name = c.get("name", "?")
        if name in seen:
            raise TableError(f"case {name}: the name is used twice")
        seen.add(name)
        for field in ("name", "action", "expect"):
            if field not in c:
                raise TableError(f"case {name}: '{field}' is missing")
        for w in c.get("when", []):
            if w.get("expect") not in DECISIONS:
                raise TableError(f"case {name}: when {w}: expect must be one of {', '.join(DECISIONS)}")
            for k, v in w.items():
                if k != "expect" and (k not in switches or v not in switches[k]):
                    raise TableError(f"case {name}: when {k}={v!r}: the switches are "
                                     + "; ".join(f"{s} in {vs}" for s, vs in switches.items()))
        if c["expect"] not in DECISIONS:
            raise TableError(f"case {name}: expect {c['expect']!r}: must be one of {', '.join(DECISIONS)}")


def cases() -> list[dict]:
    return table()["cases"]


def combinations() -> list[dict[str, str]]:
    """Every combination of the switches, first value first (the template's defaults lead)."""
    switches = table()["switches"]
    return [dict(zip(switches, values)) for values in itertools.product(*switches.values())]


def label(combo: dict[str, str]) -> str:
    return " ".join(f"{k}={v or '-'}" for k, v in combo.items())


def expected(case: dict, combo: dict[str, str]) -> str:
    for w in case.get("when", []):
        if all(combo.get(k) == v for k, v in w.items() if k != "expect"):
            return w["expect"]
    return case["expect"]


def policy(combo: dict[str, str], account: str = ACCOUNT, region: str = REGION) -> dict:
    params = {k: v for k, v in combo.items() if v != ""}
    return cfn_render.merged(cfn_render.render_role(TEMPLATE, {**BASE, **params}, "Role", account, region))


def resource(case: dict, account: str = ACCOUNT, region: str = REGION, partition: str = "aws") -> str:
    r = case.get("resource", "instance")
    return KINDS.get(r, r).format(partition=partition, region=region, account=account)


def context(case: dict) -> dict[str, str | list[str]]:
    """The request context AWS builds: a resource's tags under both ec2: and aws:ResourceTag, the
    written tags as aws:RequestTag and their keys as aws:TagKeys."""
    out: dict[str, str | list[str]] = {}
    for k, v in case.get("tags", {}).items():
        out[f"ec2:ResourceTag/{k}"] = v
        out[f"aws:ResourceTag/{k}"] = v
    if "request_tags" in case:
        for k, v in case["request_tags"].items():
            out[f"aws:RequestTag/{k}"] = v
        out["aws:TagKeys"] = list(case["request_tags"])
    out.update(case.get("context", {}))
    return out


def context_entries(case: dict) -> list[dict]:
    return [{"ContextKeyName": k, "ContextKeyValues": v if isinstance(v, list) else [v],
             "ContextKeyType": "stringList" if isinstance(v, list) else "string"}
            for k, v in context(case).items()]


def _when_text(case: dict) -> str:
    return "; ".join(f"{w['expect']} when " + ", ".join(f"{k}={v or '-'}" for k, v in w.items() if k != "expect")
                     for w in case.get("when", []))


def cmd_list(_a) -> int:
    print("check-iam: DRY LISTING of the decision table; nothing is evaluated here.")
    print("check-iam: `make iam-table` evaluates it with a policy evaluator; run `scripts/check-iam` with "
          "credentials for a sandbox account to evaluate each case in real IAM.")
    cs = cases()
    width = max(len(c["name"]) for c in cs)
    print(f"{'case':<{width}}  {'action':<30} {'decision':<8} tags / request tags")
    for c in cs:
        extra = json.dumps(c.get("tags", {})) + (f" writes {json.dumps(c['request_tags'])}" if "request_tags" in c else "")
        when = _when_text(c)
        print(f"{c['name']:<{width}}  {c['action']:<30} {c['expect']:<8} {extra}" + (f"  ({when})" if when else ""))
    print(f"check-iam: {len(cs)} cases x {len(combinations())} switch combinations listed")
    return 0


def evidence_policy() -> dict:
    """The evidence bucket's policy as CloudFormation renders it (the bucket's ARN is
    arn:aws:s3:::reportbucket here)."""
    t = cfn_render.load(EVIDENCE_TEMPLATE)
    params = {"OrganizationId": EVIDENCE_ORG, "BucketName": "reportbucket", "AccountIds": "111111111111"}
    r = cfn_render.Renderer(t, params, EVIDENCE_ACCOUNT, REGION)
    return r.value(t["Resources"]["ReportBucketPolicy"]["Properties"]["PolicyDocument"])


def evidence_cases() -> list[dict]:
    out = []
    for c in table()["evidence_bucket"]["cases"]:
        for field in ("name", "action", "caller", "key", "expect"):
            if field not in c:
                raise TableError(f"evidence_bucket case {c.get('name', '?')}: '{field}' is missing")
        if c["expect"] not in DECISIONS:
            raise TableError(f"evidence_bucket case {c['name']}: expect must be one of {', '.join(DECISIONS)}")
        out.append({
            "name": c["name"], "action": c["action"], "expected": c["expect"], "why": c.get("why", ""),
            "principal": f"arn:aws:iam::{c['caller']}:role/StackSet-ec2-reaper-Role",
            "resource": f"arn:aws:s3:::reportbucket/{c['key']}",
            "context": {"aws:PrincipalAccount": c["caller"], "aws:PrincipalOrgID": c.get("org", EVIDENCE_ORG),
                        "aws:SecureTransport": "true" if c.get("tls", True) else "false"},
        })
    return out


ACTIONS_FUNCTION_ROLE = "arn:aws:iam::111122223333:role/ec2-reaper-actions-function"


def actions_plan() -> dict:
    """The member account's owner-actions role, rendered, and its rows."""
    params = {**BASE, "ActionsFunctionRoleArn": ACTIONS_FUNCTION_ROLE}
    role_policy = cfn_render.merged(cfn_render.render_role(TEMPLATE, params, "ActionsRole", ACCOUNT, REGION))
    rows = []
    for c in table()["actions_role"]["cases"]:
        for field in ("name", "action", "expect"):
            if field not in c:
                raise TableError(f"actions_role case {c.get('name', '?')}: '{field}' is missing")
        if c["expect"] not in DECISIONS:
            raise TableError(f"actions_role case {c['name']}: expect must be one of {', '.join(DECISIONS)}")
        rows.append({"name": c["name"], "action": c["action"], "resource": resource(c), "context": context(c),
                     "expected": c["expect"], "why": c.get("why", "")})
    t = cfn_render.load(TEMPLATE)
    trust = cfn_render.Renderer(t, {**params, "ActionsOrganizationId": EVIDENCE_ORG}, ACCOUNT, REGION).value(
        t["Resources"]["ActionsRole"]["Properties"]["AssumeRolePolicyDocument"])
    trust_rows = []
    for c in table()["actions_role"]["trust"]:
        for field in ("name", "principal", "org", "expect"):
            if field not in c:
                raise TableError(f"actions_role trust case {c.get('name', '?')}: '{field}' is missing")
        trust_rows.append({"name": c["name"], "principal": c["principal"], "context": {"aws:PrincipalOrgID": c["org"]},
                           "resource": f"arn:aws:iam::{ACCOUNT}:role/ec2-reaper-actions-{REGION}",
                           "expected": c["expect"], "why": c.get("why", "")})
    return {"account": ACCOUNT, "policy": role_policy, "cases": rows, "trust": trust, "trust_cases": trust_rows}


ACTIONS_TEMPLATE = os.path.join(HERE, "..", "..", "cloudformation", "deploy_actions.yaml")
ACTIONS_CENTRAL, ACTIONS_REGION = "111122223333", "us-east-1"
ACTIONS_PARAMS = {
    "OrganizationId": "o-a1b2c3d4e5", "ArtifactBucket": "acme-central",
    "ArtifactKey": "reaper-actions/v1/bootstrap.zip", "ReportBucket": "reportbucket",
    "LinkKeyArn": "arn:aws:secretsmanager:us-east-1:111122223333:secret:ec2-reaper/link-key-AbCdEf",
    "SecretsKmsKeyArn": "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
}


def actions_function_plan() -> dict:
    """The central owner-actions function's role (deploy_actions.yaml), rendered, and its rows.
    The signing secret the stack creates renders as ...:secret:SigningSecret-AbCdEf."""
    role_policy = cfn_render.merged(cfn_render.render_role(
        ACTIONS_TEMPLATE, ACTIONS_PARAMS, "Role", ACTIONS_CENTRAL, ACTIONS_REGION))
    rows = []
    for c in table()["actions_function"]["cases"]:
        for field in ("name", "action", "resource", "expect"):
            if field not in c:
                raise TableError(f"actions_function case {c.get('name', '?')}: '{field}' is missing")
        if c["expect"] not in DECISIONS:
            raise TableError(f"actions_function case {c['name']}: expect must be one of {', '.join(DECISIONS)}")
        rows.append({"name": c["name"], "action": c["action"], "resource": c["resource"],
                     "context": c.get("context", {}), "expected": c["expect"], "why": c.get("why", "")})
    return {"account": ACTIONS_CENTRAL, "policy": role_policy, "cases": rows}


def cmd_plan(_a) -> int:
    combos = combinations()
    plan = {
        "actions": actions_plan(),
        "actions_function": actions_function_plan(),
        "evidence": {"account": EVIDENCE_ACCOUNT, "policy": evidence_policy(), "cases": evidence_cases()},
        "account": ACCOUNT,
        "combinations": [{"label": label(c), "policy": policy(c)} for c in combos],
        "cases": [{"name": c["name"], "action": c["action"], "resource": resource(c), "context": context(c),
                   "why": c.get("why", ""), "expected": [expected(c, combo) for combo in combos]}
                  for c in cases()],
    }
    json.dump(plan, sys.stdout, indent=1)
    print()
    return 0


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def _row(i: int, c: dict) -> str:
    """One row of a role's table: its resource, tags, writes and decision."""
    tags = ", ".join(f"`{k}={v}`" for k, v in c.get("tags", {}).items()) or "none"
    if c.get("context"):
        tags += "; " + ", ".join(f"`{k}={v}`" for k, v in c["context"].items())
    writes = ", ".join(f"`{k}={v}`" for k, v in c.get("request_tags", {}).items())
    res = c.get("resource", "instance")
    res = res if res in KINDS or res == "*" else f"`{res}`"
    decision = f"**{c['expect']}**" + (f"; {_when_text(c)}" if c.get("when") else "")
    return (f"| {i} | {c['name']} | `{c['action']}` | {_md(res)} | {_md(tags)} | {_md(writes)} | "
            f"{_md(decision)} | {_md(c.get('why', ''))} |")


def doc() -> str:
    t = table()
    lines = [
        "# The reaper role's IAM decision table",
        "",
        "<!-- Generated from scripts/lib/iam_cases.json by `python3 scripts/lib/check_iam.py doc`;",
        "     `make iam-table` fails when this file differs. Edit the table, then regenerate. -->",
        "",
        "SPEC §10: IAM itself enforces the reaper's safety rules, so a bad release or a stolen role",
        "cannot break them. `make iam-table` (part of `make lint`) renders the function role's policy",
        "from `cloudformation/deploy_reaper.yaml` for every combination of the switches",
        f"({', '.join(f'`{k}` ∈ {{' + ', '.join(f'`{v}`' if v else 'empty' for v in vs) + '}' for k, vs in t['switches'].items())};",
        f"{len(combinations())} combinations) and evaluates each row below with a real IAM policy evaluator",
        "([`@cloud-copilot/iam-simulate`](https://github.com/cloud-copilot/iam-simulate), pinned in",
        "`tests/iam/package-lock.json`). `scripts/check-iam` asks real IAM the same questions in an account.",
        "",
        "The request context is what AWS builds: the resource's tags as `ec2:ResourceTag/*` and",
        "`aws:ResourceTag/*`, the written tags as `aws:RequestTag/*` and their keys as `aws:TagKeys`.",
        "Resource: the instance `i-0123456789abcdef0` unless the row names another.",
        "",
        "IAM cannot parse a date or trim a value: a `termination_date` may be terminated only when it is",
        "shaped like the grammar's date-time (`YYYY-MM-DD`, `T`, `t` or a space, `HH:MM`, then anything),",
        "which refuses `indefinite` in every case and the empty value; the code's own checks (SPEC §2, §5)",
        "decide the rest. A value with white space around it, which the code trims, is refused by IAM:",
        "the reaper's call then fails with AccessDenied and is reported `failed`, never done silently.",
        "IAM compares tag *keys* case-insensitively, so `Termination_Date` counts as `termination_date`",
        "for IAM (row `terminate-key-in-other-case`); the code, which is case-sensitive, stops such an instance.",
        "Beyond these rows, `make iam-table` evaluates all 1024 case variants of `indefinite`, as",
        "`termination_date` (terminate) and as `lifetime` (stamp a date), with AllowIndefinite on and off.",
        "",
        "The notice gate (SPEC §5): `TerminateInstances` also needs `reaper:announced` to start with",
        "`terminate ` (rows `terminate-never-announced`, `terminate-announced-stop`), so an instance whose",
        "owner was never told cannot be terminated even by a faulty release. What IAM cannot express: that",
        "the announced date equals `termination_date`, that the notice is at least WARN_WINDOW (or",
        "ENROLMENT_NOTICE) old, or that the message was delivered. The role writes `reaper:announced` itself",
        "(never together with `termination_date`, row `tag-announced-with-a-date`), so a role used outside",
        "the function could record an announcement and then terminate a dated instance; those checks are the",
        "code's (functions/reaper/src/policy/announce.rs). `StopInstances` is not gated by IAM: instances",
        "launched after enrolment are stopped without an announcement.",
        "",
        "| # | case | action | resource | resource tags | writes | decision | why |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [_row(i, c) for i, c in enumerate(t["cases"], 1)]
    ar = t["actions_role"]
    lines += [
        "",
        "## The owner-actions role in each member account",
        "",
        "With `ActionsFunctionRoleArn` set, `cloudformation/deploy_reaper.yaml` creates `ActionsRole`",
        "(`<ActionsRoleName>-<region>`), which only the central `reaper-actions` function's role may assume.",
        "`make iam-table` evaluates these rows against its rendered policy (function in `eu-west-1`).",
        "",
        "| # | case | action | resource | resource tags | writes | decision | why |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [_row(i, c) for i, c in enumerate(ar["cases"], 1)]
    lines += [
        "",
        "Its trust policy, with `ActionsOrganizationId` set (`o-a1b2c3d4e5`): a caller whose own identity policy",
        "allows `sts:AssumeRole` on every role asks to assume it; only the trust can refuse.",
        "",
        "| # | case | caller | caller's Organization | decision | why |",
        "|---|---|---|---|---|---|",
    ]
    for i, c in enumerate(ar["trust"], 1):
        lines.append(f"| {i} | {c['name']} | `{c['principal']}` | `{c['org']}` | **{c['expect']}** | {_md(c.get('why', ''))} |")
    af = t["actions_function"]
    lines += [
        "",
        "## The owner-actions function's role (central account)",
        "",
        "`cloudformation/deploy_actions.yaml` gives `reaper-actions` a role that reads its two secrets, decrypts",
        "them only through Secrets Manager, assumes only `<ActionsRoleName>-*` in accounts of the Organization",
        "(`aws:ResourceOrgID`) and writes only `clicks/` in the evidence bucket; it has no EC2 permission of its",
        f"own. `make iam-table` evaluates these rows against its rendered policy (account `{ACTIONS_CENTRAL}`,",
        f"`{ACTIONS_REGION}`, with `ReportBucket` and `SecretsKmsKeyArn` set; the signing secret the stack",
        "creates is `...:secret:SigningSecret-AbCdEf`).",
        "",
        "| # | case | action | resource | context | decision | why |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, c in enumerate(af["cases"], 1):
        ctx = ", ".join(f"`{k}={v}`" for k, v in c.get("context", {}).items()) or "none"
        lines.append(f"| {i} | {c['name']} | `{c['action']}` | `{_md(c['resource'])}` | {_md(ctx)} | "
                     f"**{c['expect']}** | {_md(c.get('why', ''))} |")
    ev = t["evidence_bucket"]
    lines += [
        "",
        "## The evidence bucket's policy",
        "",
        "`cloudformation/deploy_evidence.yaml` lets every account of the Organization write its reports and",
        "records into one central bucket, each under its own prefixes only (`aws:PrincipalOrgID`,",
        "`${aws:PrincipalAccount}`). `make iam-table` evaluates these rows against the rendered bucket policy,",
        "for a caller in another account whose own identity policy allows every S3 action, so the bucket",
        f"policy alone decides; the Organization is `{EVIDENCE_ORG}`, the caller's unless the row says otherwise,",
        "over TLS unless it says `tls=false`.",
        "",
        "| # | case | action | caller | object key | decision | why |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, c in enumerate(ev["cases"], 1):
        caller = c["caller"] + (f", org `{c['org']}`" if "org" in c else "") + (", tls=false" if c.get("tls") is False else "")
        lines.append(f"| {i} | {c['name']} | `{c['action']}` | {_md(caller)} | `{_md(c['key'])}` | "
                     f"**{c['expect']}** | {_md(c.get('why', ''))} |")
    lines.append("")
    return "\n".join(lines)


def cmd_doc(_a) -> int:
    sys.stdout.write(doc())
    return 0


def cmd_simulate(a) -> int:
    bad = 0
    total = 0
    with tempfile.TemporaryDirectory() as tmp:
        for combo in combinations():
            pol = os.path.join(tmp, "policy.json")
            with open(pol, "w", encoding="utf-8") as f:
                json.dump(policy(combo, a.account, a.region), f)
            for c in cases():
                ctx = os.path.join(tmp, "ctx.json")
                with open(ctx, "w", encoding="utf-8") as f:
                    json.dump(context_entries(c), f)
                cmd = ["aws", "iam", "simulate-custom-policy", "--policy-input-list", f"file://{pol}",
                       "--action-names", c["action"], "--resource-arns", resource(c, a.account, a.region),
                       "--query", "EvaluationResults[0].EvalDecision", "--output", "text"]
                if context_entries(c):
                    cmd += ["--context-entries", f"file://{ctx}"]
                p = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if p.returncode != 0:
                    print(f"check-iam: simulate-custom-policy failed for {c['name']} ({label(combo)}):\n{p.stderr.strip()}",
                          file=sys.stderr)
                    return 1
                got = "allowed" if p.stdout.strip() == "allowed" else "denied"
                want = expected(c, combo)
                total += 1
                mark = "ok  " if got == want else "FAIL"
                bad += got != want
                print(f"{mark} {label(combo):<72} {c['name']:<36} IAM: {p.stdout.strip():<13} expected: {want}")
    print(f"check-iam: {total - bad} of {total} cases as expected in real IAM", file=sys.stderr)
    return 1 if bad else 0


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list")
    sub.add_parser("plan")
    sub.add_parser("doc")
    s = sub.add_parser("simulate")
    s.add_argument("--account", required=True)
    s.add_argument("--region", required=True)
    a = p.parse_args()
    try:
        sys.exit({"list": cmd_list, "plan": cmd_plan, "doc": cmd_doc, "simulate": cmd_simulate}[a.cmd](a))
    except (TableError, cfn_render.RenderError) as e:
        print(f"check-iam: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
