"""The evidence store (issue 22): cloudformation/deploy_evidence.yaml deployed by the real
scripts/deploy-evidence into moto, its flags checked before AWS is called, and the template's
rules read from the rendered template itself (moto creates the buckets and the key but ignores
bucket policies, the secret's resource policy, Glue and Athena: those rules are asserted here and
evaluated by real IAM only with scripts/check-iam; see docs/DEPLOY.md).
"""

from __future__ import annotations

import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts/lib"))
import cfn_render  # noqa: E402  (scripts/lib is not a package)

TEMPLATE = ROOT / "cloudformation/deploy_evidence.yaml"
ORG = "o-a1b2c3d4e5"
ACCOUNTS = "111111111111,222222222222"


def evidence_args(*extra, bucket="acme-evidence"):
    return ["--org-id", ORG, "--bucket", bucket, "--accounts", ACCOUNTS,
            "--region", "eu-west-1", "--region", "us-east-1", *extra]


def template() -> dict:
    return cfn_render.load(str(TEMPLATE))


def test_deploy_evidence_creates_the_stack_and_prints_the_reaper_params(moto, run):
    r = run("deploy-evidence", *evidence_args(), check=True)
    assert "--param ReportBucket=acme-evidence" in r.out.splitlines(), r.out
    assert "stack ec2-reaper-evidence is up to date" in r.err
    cf = moto.client("cloudformation")
    stack = cf.describe_stacks(StackName="ec2-reaper-evidence")["Stacks"][0]
    assert stack["StackStatus"] in ("CREATE_COMPLETE", "UPDATE_COMPLETE")
    params = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    assert params["OrganizationId"] == ORG
    # moto shows a CommaDelimitedList as Python's repr of the list; CloudFormation as given.
    assert all(a in params["AccountIds"] for a in ACCOUNTS.split(","))
    assert all(r in params["Regions"] for r in ("eu-west-1", "us-east-1"))
    # moto creates the key (the secret is not one of its CloudFormation types): its ARN is printed.
    assert any(line.startswith("--param SlackWebhookSecretKmsKeyArn=arn:aws:kms:") for line in r.out.splitlines())
    s3 = moto.client("s3")
    enc = s3.get_bucket_encryption(Bucket="acme-evidence")["ServerSideEncryptionConfiguration"]
    assert enc["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    # Again with the same inputs: a successful no-op.
    again = run("deploy-evidence", *evidence_args(), check=True)
    assert "--param ReportBucket=acme-evidence" in again.out.splitlines()


@pytest.mark.parametrize("args,says", [
    (["--bucket", "b-b-b", "--accounts", "111111111111", "--region", "eu-west-1"], "--org-id is required"),
    (evidence_args()[:2] + ["--bucket", "Bad_Name", "--accounts", ACCOUNTS, "--region", "eu-west-1"],
     "--bucket: 'Bad_Name' is not a bucket name"),
    (["--org-id", ORG, "--bucket", "acme-ev", "--accounts", "1111,222222222222", "--region", "eu-west-1"],
     "--accounts: '1111' is not a 12-digit AWS account id"),
    (["--org-id", ORG, "--bucket", "acme-ev", "--accounts", ACCOUNTS, "--region", "europe"],
     "--region: 'europe' is not a region name"),
    (evidence_args("--object-lock-days", "-1"), "--object-lock-days: '-1' is not a whole number"),
    (evidence_args("--scan-limit-bytes", "1000"), "at least 10000000"),
    (evidence_args("--buckt", "x"), "did you mean --bucket?"),
])
def test_bad_flags_are_refused_before_aws_is_called(moto, run, args, says):
    r = run("deploy-evidence", *args)
    assert r.code == 2, r
    assert says in r.err, r.err
    names = [s["StackName"] for s in moto.client("cloudformation").list_stacks()["StackSummaries"]]
    assert "ec2-reaper-evidence-refused" not in names


def statements(resource: str) -> dict:
    doc = template()["Resources"][resource]["Properties"]
    doc = doc.get("PolicyDocument") or doc.get("ResourcePolicy") or doc.get("KeyPolicy")
    return {s["Sid"]: s for s in doc["Statement"]}


def test_each_account_writes_only_under_its_own_prefixes():
    st = statements("ReportBucketPolicy")
    write = st["OrgAccountsWriteOwnPrefixes"]
    assert write["Effect"] == "Allow" and write["Action"] == "s3:PutObject"
    assert write["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": {"Ref": "OrganizationId"}}}
    resources = [r["Fn::Sub"] for r in write["Resource"]]
    # ${!aws:PrincipalAccount} is CloudFormation's escape for IAM's own ${aws:PrincipalAccount}.
    assert resources == ["${ReportBucket.Arn}/reports/${!aws:PrincipalAccount}/*",
                         "${ReportBucket.Arn}/evidence/account=${!aws:PrincipalAccount}/*"]
    read = st["OrgAccountsReadOwnLastDryRun"]
    assert read["Action"] == "s3:GetObject"
    assert read["Resource"]["Fn::Sub"].endswith("/reports/${!aws:PrincipalAccount}/*/last-dry-run.json")
    tls = st["TlsOnly"]
    assert tls["Effect"] == "Deny" and tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    outside = st["NoWritesFromOutsideTheOrg"]
    assert outside["Effect"] == "Deny" and "StringNotEquals" in outside["Condition"]


def test_the_bucket_is_locked_down_and_keeps_evidence():
    props = template()["Resources"]["ReportBucket"]["Properties"]
    assert props["ObjectLockEnabled"] is True
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["OwnershipControls"]["Rules"][0]["ObjectOwnership"] == "BucketOwnerEnforced"
    assert all(props["PublicAccessBlockConfiguration"].values())
    rule = props["LifecycleConfiguration"]["Rules"][0]
    assert [t["StorageClass"] for t in rule["Transitions"]] == ["STANDARD_IA", "GLACIER_IR"]
    # Governance mode only: an operator with s3:BypassGovernanceRetention can still mend a mistake.
    lock = props["ObjectLockConfiguration"]["Fn::If"][1]["Rule"]["DefaultRetention"]
    assert lock["Mode"] == "GOVERNANCE"


def test_only_the_orgs_reaper_roles_read_the_webhook_and_only_through_secrets_manager():
    secret = statements("WebhookSecretPolicy")["OrgReapersReadTheWebhook"]
    assert secret["Action"] == "secretsmanager:GetSecretValue"
    assert set(secret["Condition"]["StringEquals"]) == {"aws:PrincipalOrgID", "aws:PrincipalTag/ec2-reaper:role"}
    key = statements("WebhookKey")["OrgReapersDecryptTheirSecretsThroughSecretsManager"]
    assert key["Action"] == "kms:Decrypt"
    cond = key["Condition"]["StringEquals"]
    assert set(cond) == {"aws:PrincipalOrgID", "aws:PrincipalTag/ec2-reaper:role", "kms:ViaService"}
    # The reaper template tags its role with what these policies ask for.
    reaper = cfn_render.load(str(ROOT / "cloudformation/deploy_reaper.yaml"))
    tags = reaper["Resources"]["Role"]["Properties"]["Tags"]
    assert {"Key": "ec2-reaper:role", "Value": "function"} in tags
    assert template()["Parameters"]["ReaperRoleTag"]["Default"] == "function"


def test_the_table_projects_partitions_and_does_not_repeat_them_as_columns():
    table = template()["Resources"]["EvidenceTable"]["Properties"]["TableInput"]
    p = table["Parameters"]
    assert p["projection.enabled"] == "true"
    assert p["projection.account.type"] == "enum" and p["projection.region.type"] == "enum"
    assert p["projection.dt.type"] == "date" and p["projection.dt.format"] == "yyyy-MM-dd"
    assert p["storage.location.template"]["Fn::Sub"].endswith(
        "/evidence/account=${!account}/region=${!region}/dt=${!dt}")
    keys = [k["Name"] for k in table["PartitionKeys"]]
    columns = [c["Name"] for c in table["StorageDescriptor"]["Columns"]]
    assert keys == ["account", "region", "dt"]
    assert not set(keys) & set(columns)
    money = {c["Name"]: c["Type"] for c in table["StorageDescriptor"]["Columns"]
             if c["Name"] in ("saved_per_month", "saving_per_hour", "saving_per_month")}
    assert set(money.values()) == {"decimal(20,10)"}
    assert table["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe"
