"""The reaper role's IAM policy, rendered from deploy_reaper.yaml (scripts/lib/cfn_render.py):
its structure, and that it says what the code says (managed-by tags, the reaper's tag keys).

The decision table scripts/lib/iam_cases.json is evaluated by a real IAM policy evaluator in
`make iam-table` (tests/iam) and by real IAM in scripts/check-iam. The small evaluator here only
checks the few StringEquals grants of the SES and copier policies; it refuses any other operator,
so a policy change it cannot follow fails instead of passing.
"""

from __future__ import annotations

import fnmatch
import json
import re
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts/lib"))
import cfn_render  # noqa: E402
import check_iam  # noqa: E402

TEMPLATE = str(ROOT / "cloudformation/deploy_reaper.yaml")
BASE = {"ArtifactBucketPrefix": "acme-reaper", "ArtifactKey": "reaper/v1/bootstrap.zip"}
INSTANCE = "arn:aws:ec2:eu-west-1:123456789012:instance/i-0123456789abcdef0"


class UnsupportedCondition(Exception):
    pass


def _values(v):
    return v if isinstance(v, list) else [v]


def _condition_holds(op: str, key: str, want, ctx: dict[str, list[str]]) -> bool:
    have = ctx.get(key)
    want = [str(w) for w in _values(want)]
    if op == "Null":
        return (have is None) == (want == ["true"])
    if op == "StringEquals":
        return have is not None and any(h in want for h in have)
    if op == "StringLike":
        return have is not None and any(fnmatch.fnmatchcase(h, w) for h in have for w in want)
    if op == "StringNotLike":
        return have is None or not any(fnmatch.fnmatchcase(h, w) for h in have for w in want)
    if op == "ForAllValues:StringEquals":
        return all(h in want for h in (have or []))
    raise UnsupportedCondition(op)


def decide(policy: dict, action: str, resource: str, ctx: dict[str, list[str]]) -> str:
    """'allowed' or 'denied' for an identity policy made only of Allow statements."""
    allowed = False
    for st in policy["Statement"]:
        assert st["Effect"] == "Allow", "the evaluator knows only Allow statements"
        if not any(fnmatch.fnmatchcase(action, a) for a in _values(st["Action"])):
            continue
        if not any(fnmatch.fnmatchcase(resource, r) for r in _values(st["Resource"])):
            continue
        if all(_condition_holds(op, k, v, ctx) for op, kv in st.get("Condition", {}).items() for k, v in kv.items()):
            allowed = True
    return "allowed" if allowed else "denied"


def render(**params) -> dict:
    return cfn_render.merged(cfn_render.render_role(TEMPLATE, {**BASE, **params}))


def _rust_str_consts(path: str, pattern: str) -> list[str]:
    return re.findall(pattern, (ROOT / path).read_text(encoding="utf-8"))


def managed_tag_keys() -> list[str]:
    """MANAGED_TAG_KEYS of the code (SPEC §5), read from its source: the one list."""
    src = (ROOT / "functions/reaper/src/policy/verdict.rs").read_text(encoding="utf-8")
    body = re.search(r"pub(?:\(crate\))? const MANAGED_TAG_KEYS: &\[&str\] = &\[(.*?)\];", src, re.S)
    assert body, "MANAGED_TAG_KEYS not found in verdict.rs"
    return re.findall(r'"([^"]+)"', re.sub(r"//[^\n]*", "", body.group(1)))


MANAGED_TAGS = managed_tag_keys()


@pytest.mark.parametrize("skip_managed", ["true", "false"])
@pytest.mark.parametrize("allow_indefinite", ["true", "false"])
def test_terminate_and_stop_spare_exactly_the_codes_managed_tags(skip_managed, allow_indefinite):
    sts = {s["Sid"]: s for s in render(SkipManaged=skip_managed, AllowIndefinite=allow_indefinite)["Statement"]}
    keys = managed_tag_keys()
    assert "karpenter.sh/provisioner-name" in keys and len(keys) == 7
    managed = {f"ec2:ResourceTag/{t}": "true" for t in keys} if skip_managed == "true" else None
    assert sts["TerminateOnlyDatedUnmanaged"]["Condition"].get("Null") == managed
    assert sts["StopOnlyUnmanaged"].get("Condition") == ({"Null": managed} if managed else None)
    # Nothing else may stop or terminate.
    for sid, st in sts.items():
        acts = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        if sid not in ("TerminateOnlyDatedUnmanaged", "StopOnlyUnmanaged"):
            assert not {"ec2:TerminateInstances", "ec2:StopInstances", "ec2:*", "*"} & set(acts), sid


def test_the_table_covers_every_managed_tag_for_terminate_and_stop():
    for key in managed_tag_keys():
        for action in ("ec2:TerminateInstances", "ec2:StopInstances"):
            rows = [c for c in check_iam.cases() if c["action"] == action and key in c.get("tags", {})]
            assert rows, f"no {action} row for the managed tag {key} in iam_cases.json"


def test_only_the_codes_own_tag_keys_may_be_written():
    const = r'pub(?:\(crate\))? const \w+_TAG: &str = "(reaper:[^"]+)";'
    keys = set(_rust_str_consts("functions/reaper/src/policy/plan.rs", const))
    keys |= set(_rust_str_consts("functions/reaper/src/policy/announce.rs", const))
    assert keys == {"reaper:stopped_at", "reaper:stop_reason", "reaper:announced"}
    sts = [s for s in render()["Statement"] if s["Action"] == "ec2:CreateTags"]
    written = {k for s in sts for k in s["Condition"]["ForAllValues:StringEquals"]["aws:TagKeys"]}
    assert written == keys | {"termination_date"}
    assert not any("DeleteTags" in json.dumps(s["Action"]) for s in render()["Statement"])


def test_the_table_refuses_a_row_it_cannot_evaluate(tmp_path, monkeypatch):
    bad = {"switches": {"SkipManaged": ["true", "false"]},
           "cases": [{"name": "x", "action": "ec2:StopInstances", "expect": "denied",
                      "when": [{"SkipManagd": "false", "expect": "allowed"}]}]}
    (tmp_path / "iam_cases.json").write_text(json.dumps(bad))
    monkeypatch.setattr(check_iam, "HERE", str(tmp_path))
    with pytest.raises(check_iam.TableError, match="case x: when SkipManagd='false': the switches are SkipManaged in"):
        check_iam.table()
    bad["cases"][0]["when"] = []
    bad["cases"][0]["expect"] = "deny"
    (tmp_path / "iam_cases.json").write_text(json.dumps(bad))
    with pytest.raises(check_iam.TableError, match="case x: expect 'deny': must be one of allowed, denied"):
        check_iam.table()


def test_no_optional_grant_without_its_parameter():
    actions = {a for s in render()["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert actions == {"ec2:DescribeInstances", "ec2:DescribeVolumes", "pricing:GetProducts",
                       "ec2:TerminateInstances", "ec2:StopInstances", "ec2:CreateTags",
                       "logs:CreateLogStream", "logs:PutLogEvents", "cloudformation:DescribeStacks"}


def test_ses_only_from_notice_from():
    sts = {s["Sid"]: s for s in render(NoticeFrom="reaper@mail.example.com")["Statement"]}
    ses = sts["SendOnlyFromNoticeFrom"]
    assert ses["Action"] == "ses:SendEmail"
    assert ses["Resource"] == ["arn:aws:ses:eu-west-1:123456789012:identity/reaper@mail.example.com",
                               "arn:aws:ses:eu-west-1:123456789012:identity/mail.example.com"]
    assert ses["Condition"] == {"StringEquals": {"ses:FromAddress": "reaper@mail.example.com"}}
    pol = render(NoticeFrom="reaper@mail.example.com")
    identity = "arn:aws:ses:eu-west-1:123456789012:identity/reaper@mail.example.com"
    assert decide(pol, "ses:SendEmail", identity, {"ses:FromAddress": ["reaper@mail.example.com"]}) == "allowed"
    assert decide(pol, "ses:SendEmail", identity, {"ses:FromAddress": ["ceo@mail.example.com"]}) == "denied"
    assert decide(pol, "ses:SendRawEmail", identity, {"ses:FromAddress": ["reaper@mail.example.com"]}) == "denied"


def test_webhook_secret_and_keys_are_scoped():
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:reaper-webhook-AbCdEf"
    skey = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    ekey = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ac"
    sts = {s["Sid"]: s for s in render(SlackWebhookSecretArn=arn, SlackWebhookSecretKmsKeyArn=skey, KmsKeyArn=ekey)["Statement"]}
    assert sts["ThisSecretOnly"] == {"Sid": "ThisSecretOnly", "Effect": "Allow",
                                     "Action": "secretsmanager:GetSecretValue", "Resource": arn}
    assert sts["DecryptOnlyThroughSecretsManager"]["Resource"] == skey
    assert sts["DecryptOnlyThroughSecretsManager"]["Condition"]["StringEquals"] == {
        "kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com", "kms:EncryptionContext:SecretARN": arn}
    assert sts["DecryptOwnEnvironmentOnly"]["Resource"] == ekey
    assert sts["DecryptOwnEnvironmentOnly"]["Condition"] == {
        "StringEquals": {"kms:EncryptionContext:LambdaFunctionName": "ec2-reaper"}}


def test_function_environment_mirrors_the_new_parameters():
    tpl = cfn_render.load(TEMPLATE)
    env = tpl["Resources"]["Function"]["Properties"]["Environment"]["Variables"]
    for var, param in {"MAX_LIFETIME": "MaxLifetime", "ALLOW_INDEFINITE": "AllowIndefinite",
                       "ACTION_WINDOW": "ActionWindow", "NOTICE_FROM": "NoticeFrom",
                       "SLACKWEBHOOK_SECRET_ARN": "SlackWebhookSecretArn"}.items():
        assert env[var] == {"Ref": param}
    log_group = tpl["Resources"]["LogGroup"]
    assert log_group["DeletionPolicy"] == "Retain" and log_group["UpdateReplacePolicy"] == "Retain"


def test_the_stack_records_its_enrolment_and_notice_settings():
    """Issue 18: the function reads its stack's creation time (enrolment) with DescribeStacks on
    exactly its own stack, and the notice settings mirror their parameters."""
    tpl = cfn_render.load(TEMPLATE)
    env = tpl["Resources"]["Function"]["Properties"]["Environment"]["Variables"]
    assert env["ENROLMENT_NOTICE"] == {"Ref": "EnrolmentNotice"}
    assert env["DIGEST_AT"] == {"Ref": "DigestAt"}
    assert env["REAPER_STACK_ID"] == {"Ref": "AWS::StackId"}
    params = tpl["Parameters"]
    assert params["EnrolmentNotice"]["Default"] == "7d" and params["DigestAt"]["Default"] == "09"
    hour = re.compile(params["DigestAt"]["AllowedPattern"])
    assert [h for h in (f"{i:02}" for i in range(100)) if hour.fullmatch(h)] == [f"{i:02}" for i in range(24)]
    assert not any(hour.fullmatch(v) for v in ["", "9", "24", "09:00", " 09"])
    stack = [p for p in tpl["Resources"]["Role"]["Properties"]["Policies"] if p["PolicyName"] == "own-stack"]
    assert stack[0]["PolicyDocument"]["Statement"] == [{
        "Sid": "DescribeOwnStackOnly", "Effect": "Allow", "Action": "cloudformation:DescribeStacks",
        "Resource": {"Ref": "AWS::StackId"}}]


def test_evaluator_refuses_an_operator_it_does_not_know():
    pol = {"Statement": [{"Effect": "Allow", "Action": "ec2:StopInstances", "Resource": "*",
                          "Condition": {"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}}]}
    with pytest.raises(UnsupportedCondition):
        decide(pol, "ec2:StopInstances", INSTANCE, {})


def test_renderer_refuses_an_intrinsic_it_does_not_know(tmp_path):
    bad = tmp_path / "t.yaml"
    bad.write_text("Parameters: {}\nResources:\n  Role:\n    Type: AWS::IAM::Role\n    Properties:\n"
                   "      Policies:\n        - PolicyName: p\n          PolicyDocument:\n"
                   "            Statement:\n              - Effect: Allow\n                Action: s3:GetObject\n"
                   "                Resource: !ImportValue other-stack-bucket\n")
    with pytest.raises(cfn_render.RenderError, match="Fn::ImportValue"):
        cfn_render.render_role(str(bad), {})


def test_check_iam_dry_run_lists_every_case_and_says_it_evaluates_nothing(run):
    r = run("check-iam", "--dry-run", check=True)
    assert "DRY LISTING" in r.out and "nothing is evaluated here" in r.out
    for c in check_iam.cases():
        assert c["name"] in r.out
    assert f"{len(check_iam.cases())} cases x 16 switch combinations listed" in r.out


def test_check_iam_without_dry_run_calls_real_iam_and_reports_the_error_class(run, tmp_path):
    # Against moto, simulate-custom-policy is not implemented: the script must fail loudly.
    r = run("check-iam")
    assert r.code != 0 and "simulate-custom-policy failed" in r.err, r


def test_copier_reads_only_its_own_accounts_source_and_names_the_owner_on_every_call():
    tpl = str(ROOT / "cloudformation/deploy_to_s3.yaml")
    pol = cfn_render.merged(cfn_render.render_role(tpl, {"ArtifactBucketPrefix": "acme-reaper", "SourceBucket": "acme-src",
                                                         "SourceKey": "reaper/v1/bootstrap.zip"}, "CopierRole"))
    read = {s["Sid"]: s for s in pol["Statement"]}["ReadSourceInThisAccountOnly"]
    assert read["Resource"] == "arn:aws:s3:::acme-src/*"
    assert read["Condition"] == {"StringEquals": {"s3:ResourceAccount": "123456789012"}}
    get = "arn:aws:s3:::acme-src/reaper/v1/bootstrap.zip"
    assert decide(pol, "s3:GetObject", get, {"s3:ResourceAccount": ["123456789012"]}) == "allowed"
    assert decide(pol, "s3:GetObject", get, {"s3:ResourceAccount": ["999999999999"]}) == "denied"
    code = cfn_render.load(tpl)["Resources"]["CopierFunction"]["Properties"]["Code"]["ZipFile"]
    calls = [c for c in ("head_object(", "copy_object(", "delete_object(", "paginate(") if c in code]
    assert len(calls) == 4
    assert code.count("ExpectedBucketOwner=own") == 5 and "ExpectedSourceBucketOwner=own" in code
