"""scripts/check-iam: the reaper role's policy against the recorded expectation table
(iam_cases.json beside this file), in three parameter variants (default, SkipManaged=false,
AllowIndefinite=false).

  check_iam.py list                      the cases and the decision each variant must get (no AWS)
  check_iam.py simulate --account ID --region R
                                         each case through `aws iam simulate-custom-policy`
                                         (real IAM: conditions evaluated); exit 1 on any mismatch
stdlib + PyYAML only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cfn_render  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = os.path.join(HERE, "..", "..", "cloudformation", "deploy_reaper.yaml")
VARIANTS = {"default": {}, "SkipManaged=false": {"SkipManaged": "false"},
            "AllowIndefinite=false": {"AllowIndefinite": "false"}}
BASE = {"ArtifactBucketPrefix": "acme-reaper", "ArtifactKey": "reaper/v1/bootstrap.zip"}


def cases() -> list[dict]:
    with open(os.path.join(HERE, "iam_cases.json"), encoding="utf-8") as f:
        return json.load(f)["cases"]


def expected(case: dict, variant: str) -> str:
    return case.get("when", {}).get(variant, case["expect"])


def policy(variant: str, account: str, region: str) -> dict:
    return cfn_render.merged(cfn_render.render_role(TEMPLATE, {**BASE, **VARIANTS[variant]}, "Role", account, region))


def context_entries(case: dict) -> list[dict]:
    out = [{"ContextKeyName": f"ec2:ResourceTag/{k}", "ContextKeyValues": [v], "ContextKeyType": "string"}
           for k, v in case.get("tags", {}).items()]
    if "tag_keys" in case:
        out.append({"ContextKeyName": "aws:TagKeys", "ContextKeyValues": case["tag_keys"], "ContextKeyType": "stringList"})
    return out


def resource(case: dict, account: str, region: str) -> str:
    return case.get("resource") or f"arn:aws:ec2:{region}:{account}:instance/i-0123456789abcdef0"


def cmd_list(_a) -> int:
    print("check-iam: DRY LISTING of the recorded expectation table; nothing is evaluated here.")
    print("check-iam: run `scripts/check-iam` with credentials for a sandbox account to evaluate each case in real IAM.")
    width = max(len(c["name"]) for c in cases())
    print(f"{'case':<{width}}  {'action':<24} " + " ".join(f"{v:<22}" for v in VARIANTS) + " tags / tag keys")
    for c in cases():
        row = " ".join(f"{expected(c, v):<22}" for v in VARIANTS)
        extra = json.dumps(c.get("tags", {})) + (f" keys={c['tag_keys']}" if "tag_keys" in c else "")
        print(f"{c['name']:<{width}}  {c['action']:<24} {row} {extra}")
    print(f"check-iam: {len(cases())} cases x {len(VARIANTS)} variants listed")
    return 0


def cmd_simulate(a) -> int:
    bad = 0
    total = 0
    with tempfile.TemporaryDirectory() as tmp:
        for variant in VARIANTS:
            pol = os.path.join(tmp, "policy.json")
            with open(pol, "w", encoding="utf-8") as f:
                json.dump(policy(variant, a.account, a.region), f)
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
                    print(f"check-iam: simulate-custom-policy failed for {c['name']} ({variant}):\n{p.stderr.strip()}",
                          file=sys.stderr)
                    return 1
                got = "allowed" if p.stdout.strip() == "allowed" else "denied"
                want = expected(c, variant)
                total += 1
                mark = "ok  " if got == want else "FAIL"
                bad += got != want
                print(f"{mark} {variant:<22} {c['name']:<28} {c['action']:<24} IAM: {p.stdout.strip():<13} expected: {want}")
    print(f"check-iam: {total - bad} of {total} cases as expected in real IAM", file=sys.stderr)
    return 1 if bad else 0


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list")
    s = sub.add_parser("simulate")
    s.add_argument("--account", required=True)
    s.add_argument("--region", required=True)
    a = p.parse_args()
    sys.exit({"list": cmd_list, "simulate": cmd_simulate}[a.cmd](a))


if __name__ == "__main__":
    main()
