"""The real scripts/ (publish, deploy, golive, invoke, lint-templates) against a moto server.

moto applies a StackSet's template by creating a real stack in each region, so the resources
below were made by CloudFormation-in-moto from our templates. Where moto ignores a property
(S3 versioning, public access block and bucket policy; Lambda Architectures and LoggingConfig),
the test reads the template of the stack that was actually deployed in that region and checks
what it declares; docs/DEPLOY.md lists how to check those on real AWS.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import shutil
import stat
import urllib.request

import pytest

from conftest import ACCOUNT, REGIONS, ROOT, RUNS, SECRET_MARKERS, WEBHOOK, stack_template, versioned

PREFIX = "reaper-test"
REAPER_SS = "ec2-reaper"
ARTIFACTS_SS = "ec2-reaper-artifacts"
CSV = ",".join(REGIONS)


@pytest.fixture(scope="module")
def webhook_file(tmp_path_factory):
    f = tmp_path_factory.mktemp("secret") / "webhook"
    f.write_text(WEBHOOK + "\n")
    f.chmod(0o600)
    return f


@pytest.fixture(scope="module")
def deployed(moto, run, artifact, webhook_file):
    """Artifacts StackSet -> publish into every regional bucket -> reaper StackSet."""
    moto.reset()
    first = run("deploy", "--only", "artifacts", "--regions", CSV, "--accounts", ACCOUNT,
                "--bucket-prefix", PREFIX, check=True)
    versioned(moto, PREFIX, REGIONS)
    pub = run("publish", "--zip", str(artifact.path), "--bucket-prefix", PREFIX, "--regions", CSV,
              "--print-versions", check=True)
    key, *version_lines = pub.out.strip().splitlines()
    versions = {line.split()[0]: line.split()[1] for line in version_lines}
    second = run("deploy", "--regions", CSV, "--accounts", ACCOUNT, "--bucket-prefix", PREFIX,
                 "--artifact-key", key, "--zip", str(artifact.path), "--param", "MaxStops=50",
                 "--param", "GracePeriod=30m", "--slack-webhook-file", str(webhook_file), check=True)
    return {"key": key, "versions": versions, "logs": first.err + pub.err + second.err}


def test_publish_prints_a_content_addressed_key(deployed, artifact):
    key = deployed["key"]
    assert key.startswith("reaper/") and key.endswith("/bootstrap.zip"), key
    version = key.split("/")[1]
    assert version.endswith("-" + artifact.sha256[:12]), f"version {version} lacks the zip's sha256 prefix"


def test_publish_again_is_a_no_op_and_prints_the_same_key(deployed, run, artifact):
    again = run("publish", "--zip", str(artifact.path), "--bucket-prefix", PREFIX, "--regions", CSV, check=True)
    assert again.out.strip() == deployed["key"]
    assert again.err.count("not uploading again") == len(REGIONS), again.err


def test_other_bytes_get_another_key(deployed, run, artifact, tmp_path):
    other = tmp_path / "other.zip"
    data = bytearray(artifact.data)
    shutil.copy(artifact.path, other)
    with open(other, "ab") as f:  # a zip with trailing bytes is still a valid zip
        f.write(b"\0")
    r = run("publish", "--zip", str(other), "--bucket-prefix", PREFIX, "--regions", "us-east-1", check=True)
    assert r.out.strip() != deployed["key"]
    assert hashlib.sha256(bytes(data) + b"\0").hexdigest()[:12] in r.out


@pytest.mark.parametrize("region", REGIONS)
def test_regional_bucket_holds_the_artifact(deployed, moto, artifact, region):
    s3 = moto.client("s3", region)
    bucket = f"{PREFIX}-{region}"
    loc = s3.get_bucket_location(Bucket=bucket)["LocationConstraint"]
    assert (loc or "us-east-1") == region
    head = s3.head_object(Bucket=bucket, Key=deployed["key"])
    assert head["ContentLength"] == len(artifact.data)
    assert head["Metadata"]["sha256"] == artifact.sha256
    body = s3.get_object(Bucket=bucket, Key=deployed["key"])["Body"].read()
    assert body == artifact.data
    # Applied by moto:
    enc = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert enc["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"


@pytest.mark.parametrize("region", REGIONS)
def test_regional_bucket_is_declared_private_versioned_tls_only(deployed, moto, region):
    tpl, params = stack_template(moto, ARTIFACTS_SS, region)
    assert params["ArtifactBucketPrefix"] == PREFIX
    ss_params = {p["ParameterKey"]: p["ParameterValue"] for p in
                 moto.client("cloudformation").describe_stack_set(StackSetName=ARTIFACTS_SS)["StackSet"]["Parameters"]}
    assert ss_params["ReaderAccountIds"] == ACCOUNT, "readers default to the --accounts"
    bucket = tpl["Resources"]["ArtifactBucket"]["Properties"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True}
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    statements = tpl["Resources"]["ArtifactBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    deny = statements[0]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    # Writes: denied to everyone but the publisher (the deploying principal by default) and the copier.
    writes = statements[1]["Fn::If"]
    assert writes[0] == "RestrictWrites"
    w = writes[1]
    assert w["Effect"] == "Deny" and w["Principal"] == "*"
    assert {"s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"} <= set(w["Action"])
    assert w["Condition"]["StringNotEquals"]["aws:PrincipalArn"]["Fn::If"][0] == "HasSource"
    assert ss_params["PublisherArns"].startswith(f"arn:aws:iam::{ACCOUNT}:"), ss_params["PublisherArns"]
    grants = [s["Fn::If"][1] for s in statements[2:]]
    for g in grants:
        assert g["Effect"] == "Allow"
        assert sorted(g["Action"]) == ["s3:GetObject", "s3:GetObjectVersion"]
        # Never '*' without a condition: either the org condition or named accounts.
        if g["Principal"] == "*":
            assert g["Condition"]["StringEquals"]["aws:PrincipalOrgID"] == {"Ref": "OrganizationId"}
        else:
            assert g["Principal"] == {"AWS": {"Ref": "ReaderAccountIds"}}
    assert len(grants) == 2


@pytest.mark.parametrize("region", REGIONS)
def test_function_is_deployed_from_the_regional_bucket(deployed, moto, artifact, region):
    lam = moto.client("lambda", region)
    fn = lam.get_function(FunctionName="ec2-reaper")
    cfg = fn["Configuration"]
    assert cfg["Runtime"] == "provided.al2023"
    assert cfg["Handler"] == "bootstrap"
    assert cfg["MemorySize"] == 128 and cfg["Timeout"] == 300
    # moto read the code from <prefix>-<region>/<key>: size and hash are those of our zip.
    assert cfg["CodeSize"] == len(artifact.data)
    assert cfg["CodeSha256"] == base64.b64encode(hashlib.sha256(artifact.data).digest()).decode()
    assert fn["Code"]["Location"].endswith(deployed["key"])
    # The webhook reached the function (from --slack-webhook-file) without appearing in any output.
    env = dict(cfg["Environment"]["Variables"])
    # The stack's own id: its creation time is when the reaper was enrolled here (issue 18).
    assert env.pop("REAPER_STACK_ID").startswith(f"arn:aws:cloudformation:{region}:"), cfg
    assert env == {
        "LIVEMODE": "false", "SLACKWEBHOOK": WEBHOOK, "SLACKWEBHOOK_SECRET_ARN": "",
        "GRACE_PERIOD": "30m", "WARN_WINDOW": "1d", "MAX_TERMINATIONS": "100", "MAX_STOPS": "50",
        "SKIP_MANAGED": "true", "OWNER_TAG": "owner", "REPORT_BUCKET": "", "MAX_LIFETIME": "unlimited",
        "ALLOW_INDEFINITE": "true", "ACTION_WINDOW": "", "NOTICE_FROM": "",
        "ENROLMENT_NOTICE": "7d", "DIGEST_AT": "09",
        "ACTIONS_URL": "", "LINK_KEY_ARN": ""}
    # moto ignores Architectures and LoggingConfig; the deployed template must declare them.
    tpl, params = stack_template(moto, REAPER_SS, region)
    props = tpl["Resources"]["Function"]["Properties"]
    assert props["Architectures"] == ["arm64"]
    assert props["LoggingConfig"] == {"LogFormat": "JSON", "LogGroup": {"Ref": "LogGroup"}}
    assert props["Code"] == {"S3Bucket": {"Fn::Sub": "${ArtifactBucketPrefix}-${AWS::Region}"},
                             "S3Key": {"Ref": "ArtifactKey"},
                             "S3ObjectVersion": {"Fn::If": ["HasArtifactVersion", {"Ref": "ArtifactVersion"},
                                                            {"Ref": "AWS::NoValue"}]}}
    assert params["ArtifactKey"] == deployed["key"] and params["ArtifactBucketPrefix"] == PREFIX
    # Pinned to this region's object version, the one scripts/publish uploaded.
    assert params["ArtifactVersion"] == deployed["versions"][f"{PREFIX}-{region}"]


@pytest.mark.parametrize("region", REGIONS)
def test_log_group_has_retention(deployed, moto, region):
    groups = moto.client("logs", region).describe_log_groups(logGroupNamePrefix="/aws/lambda/ec2-reaper")["logGroups"]
    assert [(g["logGroupName"], g["retentionInDays"]) for g in groups] == [("/aws/lambda/ec2-reaper", 30)]


@pytest.mark.parametrize("region", REGIONS)
def test_both_rules_target_the_function_and_may_invoke_it(deployed, moto, region):
    events = moto.client("events", region)
    fn_arn = moto.client("lambda", region).get_function(FunctionName="ec2-reaper")["Configuration"]["FunctionArn"]
    rules = events.list_rules()["Rules"]
    schedule = [r for r in rules if r.get("ScheduleExpression")]
    state = [r for r in rules if r.get("EventPattern")]
    assert len(schedule) == 1 and len(state) == 1, rules
    assert schedule[0]["ScheduleExpression"] == "rate(1 hour)"
    assert json.loads(state[0]["EventPattern"]) == {
        "source": ["aws.ec2"], "detail-type": ["EC2 Instance State-change Notification"],
        "detail": {"state": ["pending"]}}
    for rule in (schedule[0], state[0]):
        assert rule["State"] == "ENABLED"
        targets = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
        assert [t["Arn"] for t in targets] == [fn_arn]
    policy = json.loads(moto.client("lambda", region).get_policy(FunctionName="ec2-reaper")["Policy"])
    sources = sorted(s["Condition"]["ArnLike"]["AWS:SourceArn"] for s in policy["Statement"]
                     if s["Principal"] == {"Service": "events.amazonaws.com"} and s["Action"] == "lambda:InvokeFunction")
    assert sources == sorted([schedule[0]["Arn"], state[0]["Arn"]])


def _role_statements(iam, role):
    out = []
    for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        doc = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        if isinstance(doc, str):
            # moto stores an inline policy created through CloudFormation as a Python repr.
            try:
                doc = json.loads(doc)
            except ValueError:
                doc = ast.literal_eval(doc)
        out += doc["Statement"]
    return out


def test_role_is_least_privilege(deployed, moto):
    """The role moto deployed (default parameters) holds exactly the rendered, conditioned grants:
    the policy whose decisions tests/iam proves against the decision table, and nothing else."""
    from test_iam_policy import render

    iam = moto.client("iam")
    roles = [r["RoleName"] for r in iam.list_roles()["Roles"] if r["RoleName"].startswith(f"StackSet:{REAPER_SS}-Role")]
    assert len(roles) == len(REGIONS), f"one function role per region, got {roles}"
    rendered = {s["Sid"]: s for s in render()["Statement"]}
    ec2_sids = {"TerminateOnlyDatedUnmanaged", "StopOnlyUnmanaged", "StampDateOnlyFromLifetime",
                "StampIndefiniteOnlyFromLifetime", "TagOnlyReaperKeys"}
    for role in roles:
        assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == [], "no managed policies"
        by_sid = {s["Sid"]: s for s in _role_statements(iam, role)}
        assert set(by_sid) == {"ListInstances", "PriceWhatItActsOn", "OwnLogGroupOnly", "DescribeOwnStackOnly"} | ec2_sids, \
            "no S3, SES, Secrets Manager or KMS grant without its parameter, nothing else at all"
        for sid, st in by_sid.items():
            assert st["Effect"] == "Allow"
            assert st["Action"] == rendered[sid]["Action"], sid
            assert st.get("Condition") == rendered[sid].get("Condition"), sid
        for sid in ec2_sids:
            r = by_sid[sid]["Resource"]
            assert r.startswith("arn:aws:ec2:") and r.endswith(":instance/*")
        assert "/aws/lambda/ec2-reaper" in by_sid["OwnLogGroupOnly"]["Resource"]


def test_report_bucket_adds_only_the_report_prefix(moto):
    """With ReportBucket set, the template grants s3:PutObject on reports/<account>/* and the
    evidence records' evidence/account=<account>/*, and s3:GetObject on the dry run's own record
    there (announce once), and no more."""
    from cfnlint.decode import decode

    tpl, _ = decode(str(ROOT / "cloudformation/deploy_reaper.yaml"))
    pol = tpl["Resources"]["ReportPolicy"]
    assert pol["Condition"] == "HasReportBucket"
    put, get = pol["Properties"]["PolicyDocument"]["Statement"]
    assert put["Action"] == "s3:PutObject"
    assert put["Resource"] == [
        {"Fn::Sub": "arn:${AWS::Partition}:s3:::${ReportBucket}/reports/${AWS::AccountId}/*"},
        {"Fn::Sub": "arn:${AWS::Partition}:s3:::${ReportBucket}/evidence/account=${AWS::AccountId}/*"},
    ]
    assert get["Action"] == "s3:GetObject"
    assert get["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:s3:::${ReportBucket}/reports/${AWS::AccountId}/*/last-dry-run.json"
    }


def test_publish_to_a_source_bucket(moto, run, artifact):
    moto.client("s3").create_bucket(Bucket="reaper-source-test")
    moto.client("s3").put_bucket_versioning(Bucket="reaper-source-test", VersioningConfiguration={"Status": "Enabled"})
    r = run("publish", "--zip", str(artifact.path), "--source-bucket", "reaper-source-test", check=True)
    key = r.out.strip()
    assert moto.client("s3").get_object(Bucket="reaper-source-test", Key=key)["Body"].read() == artifact.data


def test_deploy_again_is_a_successful_no_op(deployed, moto, run, artifact):
    cf = moto.client("cloudformation")
    ops_before = {ss: len(cf.list_stack_set_operations(StackSetName=ss)["Summaries"]) for ss in (REAPER_SS, ARTIFACTS_SS)}
    r = run("deploy", "--regions", CSV, "--accounts", ACCOUNT, "--bucket-prefix", PREFIX,
            "--artifact-key", deployed["key"], "--zip", str(artifact.path), "--param", "MaxStops=50",
            "--param", "GracePeriod=30m", check=True)
    assert r.err.count("template and parameters unchanged") == 2, r.err
    assert r.err.count("every stack instance exists") == 2, r.err
    ops_after = {ss: len(cf.list_stack_set_operations(StackSetName=ss)["Summaries"]) for ss in (REAPER_SS, ARTIFACTS_SS)}
    assert ops_after == ops_before, "a no-op deploy started a StackSet operation"


def test_a_new_region_creates_only_the_missing_instances(deployed, moto, run):
    # Artifacts only, so the reaper StackSet (checked elsewhere) is left as it is.
    r = run("deploy", "--only", "artifacts", "--regions", CSV + ",us-west-2", "--accounts", ACCOUNT,
            "--bucket-prefix", PREFIX, check=True)
    assert "regions us-west-2" in r.err and "us-east-1" not in r.err.split("regions us-west-2")[0].split("creating")[-1]
    cf = moto.client("cloudformation")
    regions = sorted(s["Region"] for s in cf.list_stack_instances(StackSetName=ARTIFACTS_SS)["Summaries"])
    assert regions == sorted(REGIONS + ["us-west-2"])
    moto.client("s3", "us-west-2").head_bucket(Bucket=f"{PREFIX}-us-west-2")
    versioned(moto, PREFIX, ["us-west-2"])


def test_changed_parameter_updates_and_keeps_the_rest(deployed, moto, run):
    r = run("deploy", "--only", "reaper", "--regions", CSV, "--accounts", ACCOUNT, "--param", "WarnWindow=2d", check=True)
    assert "WarnWindow: (default) -> '2d'" in r.err
    params = {p["ParameterKey"]: p["ParameterValue"] for p in
              moto.client("cloudformation").describe_stack_set(StackSetName=REAPER_SS)["StackSet"]["Parameters"]}
    assert params["WarnWindow"] == "2d"
    assert params["MaxStops"] == "50" and params["ArtifactKey"] == deployed["key"], "other values kept"


def test_golive_refuses_without_yes_then_sets_only_livemode(deployed, moto, run):
    cf = moto.client("cloudformation")
    before = {p["ParameterKey"]: p["ParameterValue"] for p in cf.describe_stack_set(StackSetName=REAPER_SS)["StackSet"]["Parameters"]}
    refused = run("golive")
    assert refused.code == 2 and "--yes" in refused.err
    assert "LiveMode" not in before or before["LiveMode"] == "false"
    r = run("golive", "--yes", check=True)
    assert "LiveMode false -> true" in r.err
    after = {p["ParameterKey"]: p["ParameterValue"] for p in cf.describe_stack_set(StackSetName=REAPER_SS)["StackSet"]["Parameters"]}
    assert after == {**before, "LiveMode": "true"}
    again = run("golive", "--yes", check=True)
    assert "already true" in again.err
    # A later deploy that does not mention LiveMode keeps it on.
    run("deploy", "--only", "reaper", "--regions", CSV, "--accounts", ACCOUNT, check=True)
    kept = {p["ParameterKey"]: p["ParameterValue"] for p in cf.describe_stack_set(StackSetName=REAPER_SS)["StackSet"]["Parameters"]}
    assert kept["LiveMode"] == "true"
    run("golive", "--off", "--yes", check=True)


# ---- negative: bad input is refused before anything is called, naming what was wrong -------

@pytest.mark.parametrize("param,named", [
    ("MaxStops=-1", "MaxStops"),
    ("LiveMode=yes", "LiveMode"),
    ("GracePeriod=15min", "GracePeriod"),
    ("MaxTerminations=lots", "MaxTerminations"),
    ("LogRetentionDays=31", "LogRetentionDays"),
    ("Timeout=901", "Timeout"),
    ("Schedule=every hour", "Schedule"),
    ("Bogus=1", "Bogus"),
])
def test_bad_parameter_is_rejected_by_name(moto, run, param, named):
    r = run("deploy", "--regions", CSV, "--accounts", ACCOUNT, "--bucket-prefix", "neg-test",
            "--artifact-key", "reaper/x/bootstrap.zip", "--stack-set", "neg-reaper",
            "--artifacts-stack-set", "neg-artifacts", "--param", param)
    assert r.code == 2, r
    assert named in r.err and "error" in r.err
    names = [s["StackSetName"] for s in moto.client("cloudformation").list_stack_sets()["Summaries"]
             if s["Status"] == "ACTIVE"]
    assert "neg-reaper" not in names and "neg-artifacts" not in names, "nothing may be created"


@pytest.mark.parametrize("args,named", [
    (["--regions", "us-east-1", "--accounts", "12345"], "--accounts"),
    (["--regions", "mars-1", "--accounts", ACCOUNT], "--regions"),
    (["--regions", "us-east-1", "--accounts", ACCOUNT, "--bucket-prefix", "x" * 48], "--bucket-prefix"),
    (["--regions", "us-east-1", "--accounts", ACCOUNT, "--bucket-prefix", "Upper"], "--bucket-prefix"),
    (["--regions", "us-east-1", "--org-units", "ou-abcd-12345678"], "--org-id"),
    (["--regions", "us-east-1"], "--accounts"),
    (["--regions", "us-east-1", "--accounts", ACCOUNT, "--only", "both"], "--only"),
    (["--regions", "us-east-1", "--accounts", ACCOUNT, "--frobnicate"], "--frobnicate"),
])
def test_bad_flag_is_rejected_by_name(run, args, named):
    r = run("deploy", *args)
    assert r.code == 2 and named in r.err, r


def test_deploy_refuses_an_unpublished_key(moto, run, artifact):
    run("deploy", "--only", "artifacts", "--regions", "eu-west-1", "--accounts", ACCOUNT,
        "--bucket-prefix", "unpub-test", "--artifacts-stack-set", "unpub-artifacts", check=True)
    versioned(moto, "unpub-test", ["eu-west-1"])  # as CloudFormation makes it on AWS
    r = run("deploy", "--only", "reaper", "--regions", "eu-west-1", "--accounts", ACCOUNT,
            "--bucket-prefix", "unpub-test", "--artifact-key", "reaper/nothere/bootstrap.zip", "--stack-set", "unpub-reaper",
            "--zip", str(artifact.path))
    assert r.code == 1 and "s3://unpub-test-eu-west-1/reaper/nothere/bootstrap.zip not found" in r.err
    with pytest.raises(Exception, match="StackSetNotFound"):
        moto.client("cloudformation").describe_stack_set(StackSetName="unpub-reaper")


def test_publish_refuses_what_is_not_a_lambda_zip(run, tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip")
    r = run("publish", "--zip", str(bad), "--bucket-prefix", PREFIX, "--regions", "us-east-1")
    assert r.code == 2 and "--zip" in r.err and "bootstrap" in r.err
    r = run("publish", "--zip", str(bad))
    assert r.code == 2 and "--source-bucket" in r.err


# ---- invoke ----------------------------------------------------------------------------------

def test_invoke_sends_the_payload_and_prints_the_result(deployed, moto, run, tmp_path):
    # Without Docker moto cannot run the zip; its "simple" Lambda backend echoes the payload,
    # which shows the script's round trip (payload file in, JSON out, exit 0).
    urllib.request.urlopen(urllib.request.Request(moto.url + "/moto-api/config", method="POST",
                                                  data=json.dumps({"lambda": {"use_docker": False}}).encode()))
    f = tmp_path / "manual.json"
    f.write_text('{"dry_run": true, "at": "2030-01-01T00:00:00Z"}')
    r = run("invoke", "--region", "eu-west-1", "--payload-file", str(f), check=True)
    assert json.loads(r.out) == {"dry_run": True, "at": "2030-01-01T00:00:00Z"}
    r = run("invoke", "--region", "eu-west-1", "--payload", "not json")
    assert r.code == 2 and "--payload" in r.err


def test_invoke_exits_non_zero_on_function_error(run, tmp_path):
    # An aws stand-in answers like Lambda does for a failed function (moto cannot).
    fake = tmp_path / "bin"
    fake.mkdir()
    aws = fake / "aws"
    aws.write_text("#!/usr/bin/env bash\n"
                   "out=${@: -1}\n"
                   "printf '%s' '{\"errorType\":\"Config\",\"errorMessage\":\"MAX_STOPS=-1: expected a non-negative integer or unlimited\"}' > \"$out\"\n"
                   "echo '{\"StatusCode\": 200, \"FunctionError\": \"Unhandled\", \"ExecutedVersion\": \"$LATEST\"}'\n")
    aws.chmod(aws.stat().st_mode | stat.S_IEXEC)
    import os
    # Real Lambda's answer, so not the local emulator's endpoint.
    r = run("invoke", "--region", "eu-west-1", env={"REAPER_VENV": str(tmp_path / "novenv"), "AWS_ENDPOINT_URL": "",
                                                   "PATH": f"{fake}:{os.environ['PATH']}"})
    assert r.code == 1
    assert json.loads(r.out)["errorType"] == "Config"
    assert "the function failed (Unhandled)" in r.err


# ---- lint ------------------------------------------------------------------------------------

def test_templates_lint_clean(run):
    r = run("lint-templates", check=True)
    assert "0 errors, 0 warnings" in r.err


def test_lint_fails_on_a_warning(run, tmp_path):
    tpl = (ROOT / "cloudformation/deploy_reaper.yaml").read_text()
    bad = tmp_path / "warn.yaml"
    # An unused parameter is a warning (W2001), not an error: it must still fail.
    bad.write_text(tpl.replace("Parameters:\n", "Parameters:\n  Unused:\n    Type: String\n    Default: x\n", 1))
    r = run("lint-templates", str(bad))
    assert r.code != 0 and "W2001" in r.err, r
