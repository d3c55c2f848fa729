"""Owner actions' central stack (issue 23): cloudformation/deploy_actions.yaml published and
deployed by the real scripts/publish and scripts/deploy-actions into moto, its flags checked
before AWS is called; its --param lines then deploy the reaper StackSet whose member stack
creates the owner-actions role that trusts exactly this function's role. moto creates the
function, its URL (tests/deploy/moto_aws_semantics.py), the role and the empty signing secret;
it does not enforce IAM (the role's rows in docs/IAM.md are evaluated by `make iam-table`) and
cannot invoke a Function URL (the real binary answers Function URL events in
tests/tests/actions.rs).
"""

from __future__ import annotations

import json
import sys

import pytest

from conftest import ROOT, stack_template, versioned

sys.path.insert(0, str(ROOT / "scripts/lib"))
import cfn_render  # noqa: E402  (scripts/lib is not a package)

TEMPLATE = ROOT / "cloudformation/deploy_actions.yaml"
ORG = "o-a1b2c3d4e5"
ACCOUNT = "123456789012"
LINK_KEY = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:ec2-reaper/link-key-AbCdEf"
BUCKET = "acme-central"


@pytest.fixture(scope="module")
def published(moto, run, actions_artifact):
    """The zip published as reaper-actions into a versioned bucket of the central account."""
    s3 = moto.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    r = run("publish", "--name", "reaper-actions", "--zip", str(actions_artifact.path), "--source-bucket", BUCKET,
            check=True)
    key = r.out.strip()
    assert key.startswith("reaper-actions/") and key.endswith("/bootstrap.zip"), r.out
    return key


def actions_args(key, *extra, zip_path=None):
    args = ["--org-id", ORG, "--link-key-arn", LINK_KEY, "--artifact-bucket", BUCKET, "--artifact-key", key]
    if zip_path:
        args += ["--zip", str(zip_path)]
    return [*args, *extra]


def test_deploy_actions_creates_the_function_and_prints_the_reaper_params(moto, run, actions_artifact, published):
    r = run("deploy-actions", *actions_args(published, "--param", "ReportBucket=acme-evidence",
                                            "--param", "AdminSlackIds=U0ADMIN123,W0ADMIN456",
                                            "--param", "MaxLifetime=90d", zip_path=actions_artifact.path), check=True)
    lines = dict(line.split("=", 1) for line in r.out.splitlines())
    role = f"arn:aws:iam::{ACCOUNT}:role/ec2-reaper-actions-function"
    assert lines == {"--param ActionsFunctionRoleArn": role,
                     "--param ActionsOrganizationId": ORG,
                     "--param ActionsUrl": lines["--param ActionsUrl"],
                     "--param LinkKeyArn": LINK_KEY}, r.out
    assert lines["--param ActionsUrl"].startswith("https://") and ".lambda-url.us-east-1." in lines["--param ActionsUrl"]
    assert "Slack signing secret: EMPTY" in r.err, r.err

    lam = moto.client("lambda")
    fn = lam.get_function(FunctionName="ec2-reaper-actions")["Configuration"]
    # (moto's CloudFormation drops Architectures; the template's arm64 is asserted below.)
    assert fn["Runtime"] == "provided.al2023"
    assert fn["Role"] == role
    env = fn["Environment"]["Variables"]
    signing = moto.client("secretsmanager").describe_secret(SecretId="ec2-reaper-actions/slack-signing-secret")
    assert env == {"LINK_KEY_ARN": LINK_KEY, "SLACK_SIGNING_SECRET_ARN": signing["ARN"],
                   "ACTIONS_ROLE_NAME": "ec2-reaper-actions", "ADMIN_SLACK_IDS": "U0ADMIN123,W0ADMIN456",
                   "MAX_LIFETIME": "90d", "ALLOW_INDEFINITE": "true", "OWNER_TAG": "owner",
                   "REPORT_BUCKET": "acme-evidence"}
    # Created empty: no value until the operator puts the Slack app's.
    assert "AWSCURRENT" not in json.dumps(signing.get("VersionIdsToStages", {}))
    # The code is the published object's version, not whatever the key holds later.
    head = moto.client("s3").head_object(Bucket=BUCKET, Key=published)
    assert head["Metadata"]["sha256"] == actions_artifact.sha256
    stack = moto.client("cloudformation").describe_stacks(StackName="ec2-reaper-actions")["Stacks"][0]
    params = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    assert params["ArtifactVersion"] == head["VersionId"]
    url = lam.get_function_url_config(FunctionName="ec2-reaper-actions")
    assert url["AuthType"] == "NONE" and url["FunctionUrl"] == lines["--param ActionsUrl"]
    # The role exists under the name member stacks trust; what it may do is evaluated by
    # `make iam-table` (docs/IAM.md, the owner-actions function's rows), as moto enforces no IAM.
    iam_role = moto.client("iam").get_role(RoleName="ec2-reaper-actions-function")["Role"]
    assert iam_role["Arn"] == role

    # Again with the same inputs: a successful no-op, the same lines.
    again = run("deploy-actions", *actions_args(published, "--param", "ReportBucket=acme-evidence",
                                                "--param", "AdminSlackIds=U0ADMIN123,W0ADMIN456",
                                                "--param", "MaxLifetime=90d", zip_path=actions_artifact.path), check=True)
    assert again.out == r.out


def test_its_lines_deploy_the_member_role_that_trusts_only_this_function(moto, run, artifact, published):
    """The printed --param lines, given to scripts/deploy as they are, make each member stack's
    owner-actions role trust the function's role and nothing else."""
    r = run("deploy-actions", *actions_args(published, "--stack-name", "acme-actions", "--param",
                                            "FunctionName=acme-actions", "--param", "ActionsRoleName=acme-actions"),
            check=True)
    flags = [part for line in r.out.splitlines() for part in line.split(" ", 1)]
    prefix = "acme-actions-art"
    run("deploy", "--only", "artifacts", "--region", "eu-west-1", "--accounts", ACCOUNT,
        "--bucket-prefix", prefix, "--artifacts-stack-set", "acme-actions-artifacts", check=True)
    versioned(moto, prefix, ["eu-west-1"])
    key = run("publish", "--zip", str(artifact.path), "--bucket-prefix", prefix, "--region", "eu-west-1",
              check=True).out.strip()
    run("deploy", "--region", "eu-west-1", "--accounts", ACCOUNT, "--bucket-prefix", prefix,
        "--artifact-key", key, "--zip", str(artifact.path), "--stack-set", "acme-actions-reaper",
        "--artifacts-stack-set", "acme-actions-artifacts", "--only", "reaper", *flags,
        "--param", "ActionsRoleName=acme-actions", check=True)
    _, params = stack_template(moto, "acme-actions-reaper", "eu-west-1")
    assert params["ActionsFunctionRoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/acme-actions-function"
    assert params["ActionsUrl"].startswith("https://") and params["LinkKeyArn"] == LINK_KEY
    trust = moto.client("iam").get_role(RoleName="acme-actions-eu-west-1")["Role"]["AssumeRolePolicyDocument"]
    assert [(s["Principal"], s.get("Condition")) for s in trust["Statement"]] == [
        ({"AWS": params["ActionsFunctionRoleArn"]}, {"StringEquals": {"aws:PrincipalOrgID": ORG}})], trust


def test_it_takes_the_link_key_bucket_and_key_from_the_evidence_store(moto, run, actions_artifact):
    """--evidence-stack (the default when --link-key-arn is not given): the evidence store's
    LinkKeyArn, WebhookKeyArn and ReportBucket outputs, in its own region."""
    region = {"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-1"}
    run("deploy-evidence", "--org-id", ORG, "--bucket", "acme-actions-evidence", "--accounts", ACCOUNT,
        "--region", "eu-west-1", "--stack-name", "acme-evidence", env=region, check=True)
    s3 = moto.client("s3", "eu-west-1")
    s3.create_bucket(Bucket="acme-central-eu", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_bucket_versioning(Bucket="acme-central-eu", VersioningConfiguration={"Status": "Enabled"})
    key = run("publish", "--name", "reaper-actions", "--zip", str(actions_artifact.path), "--source-bucket", "acme-central-eu",
              "--source-region", "eu-west-1", env=region, check=True).out.strip()
    r = run("deploy-actions", "--org-id", ORG, "--evidence-stack", "acme-evidence", "--artifact-bucket", "acme-central-eu",
            "--artifact-key", key, "--zip", str(actions_artifact.path), "--stack-name", "acme-ev-actions",
            "--param", "FunctionName=acme-ev-actions", env=region, check=True)
    outputs = {o["OutputKey"]: o["OutputValue"] for o in moto.client("cloudformation", "eu-west-1").describe_stacks(
        StackName="acme-evidence")["Stacks"][0]["Outputs"]}
    assert f"--param LinkKeyArn={outputs['LinkKeyArn']}" in r.out.splitlines(), r.out
    env = moto.client("lambda", "eu-west-1").get_function(FunctionName="acme-ev-actions")["Configuration"][
        "Environment"]["Variables"]
    assert env["LINK_KEY_ARN"] == outputs["LinkKeyArn"] and env["REPORT_BUCKET"] == "acme-actions-evidence"
    stack = moto.client("cloudformation", "eu-west-1").describe_stacks(StackName="acme-ev-actions")["Stacks"][0]
    params = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    assert params["SecretsKmsKeyArn"] == outputs["WebhookKeyArn"]
    # No evidence store of that name: said, with both ways out.
    r = run("deploy-actions", "--org-id", ORG, "--evidence-stack", "nope", "--artifact-bucket", "acme-central-eu",
            "--artifact-key", key, env=region)
    assert r.code == 1 and "--link-key-arn" in r.err, r.err


@pytest.mark.parametrize("args,says", [
    (["--link-key-arn", LINK_KEY, "--artifact-bucket", BUCKET, "--artifact-key", "k.zip"], "--org-id is required"),
    (["--org-id", ORG, "--link-key-arn", LINK_KEY, "--evidence-stack", "ev", "--artifact-bucket", BUCKET,
      "--artifact-key", "k.zip"], "not both"),
    (["--org-id", "o-1", "--link-key-arn", LINK_KEY, "--artifact-bucket", BUCKET, "--artifact-key", "k.zip"],
     "OrganizationId"),
    (["--org-id", ORG, "--link-key-arn", "arn:aws:kms:us-east-1:1:key/x", "--artifact-bucket", BUCKET,
      "--artifact-key", "k.zip"], "LinkKeyArn"),
    (["--org-id", ORG, "--link-key-arn", LINK_KEY, "--artifact-bucket", BUCKET, "--artifact-key", "k.zip",
      "--param", "AdminSlackIds=alice"], "AdminSlackIds"),
    (["--org-id", ORG, "--link-key-arn", LINK_KEY, "--artifact-bucket", BUCKET, "--artifact-key", "k.zip",
      "--param", "MaxLifetime=forever"], "MaxLifetime"),
    # The template's patterns let these through; the function's own rules (reaperctl
    # check-config --actions) do not, so they never reach a function that would not start.
    (["--org-id", ORG, "--link-key-arn", LINK_KEY, "--artifact-bucket", BUCKET, "--artifact-key", "k.zip",
      "--param", "AdminSlackIds=UADMINABC"], "the function would refuse to start: reaperctl: configuration error: ADMIN_SLACK_IDS"),
    (["--org-id", ORG, "--link-key-arn", LINK_KEY, "--artifact-bucket", BUCKET, "--artifact-key", "k.zip",
      "--param", "MaxLifetime=0d"], "MAX_LIFETIME=\"0d\" is not accepted"),
    (["--org-id", ORG, "--link-key-arn", LINK_KEY, "--artifact-bucket", BUCKET, "--artifact-key", "k.zip",
      "--param", "AdminSlackId=U0ADMIN123"], "did you mean AdminSlackIds"),
    (["--org-id", ORG, "--link-key-arn", LINK_KEY, "--artifact-bucket", BUCKET, "--artifact-key", "k.zip",
      "--param", "ArtifactVersion=abc"], "give it as its own flag"),
    (["--org-id", ORG, "--link-key-arn", LINK_KEY, "--artifact-bucket", BUCKET, "--artifact-ky", "k.zip"],
     "did you mean --artifact-key?"),
])
def test_bad_flags_are_refused_before_aws_is_called(moto, run, args, says):
    before = moto.client("cloudformation").list_stacks()["StackSummaries"]
    r = run("deploy-actions", *args, "--stack-name", "ec2-reaper-actions-refused")
    assert r.code == 2, r
    assert says in r.err, r.err
    after = moto.client("cloudformation").list_stacks()["StackSummaries"]
    assert len(after) == len(before)


def test_a_zip_that_was_not_published_is_refused(moto, run, tmp_path, published):
    other = tmp_path / "other.zip"
    other.write_bytes(b"PK\x05\x06" + b"\x00" * 18)
    r = run("deploy-actions", *actions_args(published, "--stack-name", "ec2-reaper-actions-other", zip_path=other))
    assert r.code == 1, r
    assert "publish it first" in r.err, r.err


def template() -> dict:
    return cfn_render.load(str(TEMPLATE))


def test_the_url_is_public_only_through_both_documented_permissions():
    res = template()["Resources"]
    assert res["Url"]["Properties"]["AuthType"] == "NONE"
    assert res["Function"]["Properties"]["Architectures"] == ["arm64"]
    perms = {k: v["Properties"] for k, v in res.items() if v["Type"] == "AWS::Lambda::Permission"}
    assert perms == {
        "UrlPermission": {"FunctionName": {"Ref": "Function"}, "Action": "lambda:InvokeFunctionUrl",
                          "Principal": "*", "FunctionUrlAuthType": "NONE"},
        "UrlInvokePermission": {"FunctionName": {"Ref": "Function"}, "Action": "lambda:InvokeFunction",
                                "Principal": "*", "InvokedViaFunctionUrl": True},
    }
    # A flood of unsigned requests is capped; the reason the URL may be public is in the template.
    assert res["Function"]["Properties"]["ReservedConcurrentExecutions"] == {"Ref": "ReservedConcurrency"}
    text = TEMPLATE.read_text()
    assert "safe only because the function authenticates every request" in text
