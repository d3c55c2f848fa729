"""The running code is the built code, and the webhook stays secret (issue 11 §2, §3), with the
real scripts against moto (through moto_aws_semantics.py, which makes moto honour
ParameterOverrides merging and Code.S3ObjectVersion as AWS does).

A "swapped object" is other bytes written at the published key after publishing: a new current
version of the same key, as anyone with s3:PutObject on the bucket could write.
"""

from __future__ import annotations

import base64
import hashlib

import pytest

from conftest import ACCOUNT, RUNS, SECRET_MARKERS, WEBHOOK, versioned

PREFIX = "pin-test"
REAPER_SS = "pin-reaper"
ARTIFACTS_SS = "pin-artifacts"
HOME = ["us-east-1", "eu-west-1"]
SWAPPED_BYTES = b"PK\x05\x06" + b"\0" * 18  # an empty zip: valid, and surely not the build


def b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def deploy_args(*regions, extra=()):
    return ("--regions", ",".join(regions), "--accounts", ACCOUNT, "--bucket-prefix", PREFIX,
            "--stack-set", REAPER_SS, "--artifacts-stack-set", ARTIFACTS_SS, *extra)


@pytest.fixture(scope="module")
def pinned(moto, run, artifact):
    moto.reset()
    run("deploy", *deploy_args(*HOME, extra=("--only", "artifacts")), check=True)
    versioned(moto, PREFIX, HOME)
    pub = run("publish", "--zip", str(artifact.path), "--bucket-prefix", PREFIX, "--regions", ",".join(HOME),
              "--print-versions", check=True)
    key, *lines = pub.out.strip().splitlines()
    versions = dict(line.split() for line in lines)
    # The webhook from the environment this time (the other tests use --slack-webhook-file).
    dep = run("deploy", *deploy_args(*HOME, extra=("--artifact-key", key, "--zip", str(artifact.path))),
              env={"REAPER_SLACK_WEBHOOK": WEBHOOK}, check=True)
    return {"key": key, "versions": versions, "deploy": dep}


def publish_then_swap(moto, run, artifact, region, key):
    """A new region gets the artifact; then someone writes other bytes at the same key."""
    run("deploy", *deploy_args(*HOME, region, extra=("--only", "artifacts")), check=True)
    versioned(moto, PREFIX, [region])
    pub = run("publish", "--zip", str(artifact.path), "--bucket-prefix", PREFIX, "--regions", region,
              "--print-versions", check=True)
    assert pub.out.splitlines()[0] == key
    good = pub.out.splitlines()[1].split()[1]
    s3 = moto.client("s3", region)
    bad = s3.put_object(Bucket=f"{PREFIX}-{region}", Key=key, Body=SWAPPED_BYTES)["VersionId"]
    assert bad != good
    return good


def function_sha(moto, region):
    return moto.client("lambda", region).get_function(FunctionName="ec2-reaper")["Configuration"]["CodeSha256"]


def test_publish_returns_one_version_per_regional_bucket(pinned):
    assert set(pinned["versions"]) == {f"{PREFIX}-{r}" for r in HOME}
    assert len(set(pinned["versions"].values())) == len(HOME), "each bucket has its own version id"


@pytest.mark.parametrize("region", HOME)
def test_each_stack_instance_is_pinned_to_its_regions_version(pinned, moto, artifact, region):
    cf = moto.client("cloudformation")
    inst = cf.describe_stack_instance(StackSetName=REAPER_SS, StackInstanceAccount=ACCOUNT,
                                      StackInstanceRegion=region)["StackInstance"]
    overrides = {p["ParameterKey"]: p["ParameterValue"] for p in inst["ParameterOverrides"]}
    assert overrides["ArtifactKey"] == pinned["key"]
    assert overrides["ArtifactVersion"] == pinned["versions"][f"{PREFIX}-{region}"]
    assert function_sha(moto, region) == b64(artifact.data)
    assert f"version {pinned['versions'][f'{PREFIX}-{region}']} holds the build" in pinned["deploy"].err
    assert f"CodeSha256 {b64(artifact.data)} (the build) in all {len(HOME)} functions checked" in pinned["deploy"].err


def test_version_pin_keeps_the_built_code_after_the_object_is_swapped(pinned, moto, run, artifact):
    """us-west-2 joins later (as auto-deployment or a later deploy would add it) with its pinned
    version: the function gets the build, not the swapped bytes that are now current at the key."""
    good = publish_then_swap(moto, run, artifact, "us-west-2", pinned["key"])
    moto.client("cloudformation").create_stack_instances(
        StackSetName=REAPER_SS, Accounts=[ACCOUNT], Regions=["us-west-2"],
        ParameterOverrides=[{"ParameterKey": "ArtifactKey", "ParameterValue": pinned["key"]},
                            {"ParameterKey": "ArtifactVersion", "ParameterValue": good}])
    assert function_sha(moto, "us-west-2") == b64(artifact.data)
    assert function_sha(moto, "us-west-2") != b64(SWAPPED_BYTES)
    r = run("deploy", *deploy_args("us-west-2", extra=("--verify-only", "--zip", str(artifact.path))), check=True)
    assert "in all 1 functions checked" in r.err


@pytest.fixture(scope="module")
def unpinned_swapped(pinned, moto, run, artifact):
    """ap-southeast-2 gets an instance with the StackSet's own values only (no version): what an
    account joining later got before this issue. It pulls whatever is current: the swapped bytes."""
    publish_then_swap(moto, run, artifact, "ap-southeast-2", pinned["key"])
    moto.client("cloudformation").create_stack_instances(StackSetName=REAPER_SS, Accounts=[ACCOUNT],
                                                         Regions=["ap-southeast-2"])
    assert function_sha(moto, "ap-southeast-2") == b64(SWAPPED_BYTES)
    return "ap-southeast-2"


def test_code_sha256_check_fails_loudly_on_a_function_built_from_a_swapped_object(unpinned_swapped, run, artifact):
    r = run("deploy", *deploy_args(*HOME, unpinned_swapped, extra=("--verify-only", "--zip", str(artifact.path))))
    assert r.code == 1, r
    assert (f"CODE MISMATCH in account {ACCOUNT}, region ap-southeast-2: ec2-reaper runs CodeSha256 "
            f"{b64(SWAPPED_BYTES)}, the build is {b64(artifact.data)}") in r.err
    assert "1 of 3 functions do not run the build" in r.err
    # The regions that run the build are not reported.
    assert "region us-east-1" not in r.err and "region eu-west-1" not in r.err


def test_deploy_refuses_a_key_whose_current_version_is_not_the_build(unpinned_swapped, moto, run, artifact, pinned):
    cf = moto.client("cloudformation")
    ops = len(cf.list_stack_set_operations(StackSetName=REAPER_SS)["Summaries"])
    r = run("deploy", *deploy_args(unpinned_swapped, extra=("--only", "reaper", "--artifact-key", pinned["key"],
                                                             "--zip", str(artifact.path))))
    assert r.code == 1, r
    assert f"s3://{PREFIX}-ap-southeast-2/{pinned['key']}" in r.err
    assert f"holds sha256 {hashlib.sha256(SWAPPED_BYTES).hexdigest()}, not the build's {hashlib.sha256(artifact.data).hexdigest()}" in r.err
    assert "refusing to deploy it" in r.err
    assert len(cf.list_stack_set_operations(StackSetName=REAPER_SS)["Summaries"]) == ops, "nothing was started"


def test_a_new_key_needs_the_build_to_pin_it(pinned, run):
    r = run("deploy", *deploy_args(*HOME, extra=("--only", "reaper", "--artifact-key", pinned["key"])))
    assert r.code == 2 and "--artifact-key needs --zip PATH or --sha256 HEX" in r.err


# ---- the webhook ------------------------------------------------------------------------------

def test_webhook_on_the_command_line_is_refused_and_not_echoed(pinned, run):
    r = run("deploy", *deploy_args(*HOME, extra=("--only", "reaper", "--param", f"SlackWebhook={WEBHOOK}")))
    assert r.code == 2, r
    assert "SlackWebhook: a secret (NoEcho) is never taken from the command line" in r.err
    assert "--slack-webhook-file FILE or the REAPER_SLACK_WEBHOOK environment variable" in r.err


def test_a_rejected_webhook_is_not_echoed(pinned, run, tmp_path):
    f = tmp_path / "hook"
    f.write_text(WEBHOOK.replace("https://", "http://"))  # fails the template's https:// pattern
    r = run("deploy", *deploy_args(*HOME, extra=("--only", "reaper", "--slack-webhook-file", str(f))))
    assert r.code == 2, r
    assert "SlackWebhook: the value given (NoEcho, not shown) is not accepted" in r.err


def test_a_changed_webhook_is_reported_without_its_value(pinned, moto, run, tmp_path):
    f = tmp_path / "hook"
    f.write_text(WEBHOOK + "\n")
    r = run("deploy", *deploy_args(*HOME, extra=("--only", "reaper", "--slack-webhook-file", str(f))), check=True)
    assert "SlackWebhook: set (secret, not shown)" in r.err
    params = {p["ParameterKey"]: p["ParameterValue"] for p in
              moto.client("cloudformation").describe_stack_set(StackSetName=REAPER_SS)["StackSet"]["Parameters"]}
    assert params["SlackWebhook"] == WEBHOOK, "the value did reach CloudFormation (moto does not mask NoEcho)"


def test_webhook_from_two_sources_is_refused(pinned, run, tmp_path):
    f = tmp_path / "hook"
    f.write_text(WEBHOOK)
    r = run("deploy", *deploy_args(*HOME, extra=("--only", "reaper", "--slack-webhook-file", str(f))),
            env={"REAPER_SLACK_WEBHOOK": WEBHOOK})
    assert r.code == 2 and "not both" in r.err


def test_no_captured_script_output_holds_the_secret():
    """Every script run of the session (all deploy tests) was checked as it ran; this proves the
    check had something to look at: runs that were handed the secret, and none printed it."""
    handed = [a for s, a, _ in RUNS if s == "deploy" and ("--slack-webhook-file" in a or any(WEBHOOK in x for x in a))]
    assert len(handed) >= 4, handed
    for script, args, r in RUNS:
        for m in SECRET_MARKERS:
            assert m not in r.out and m not in r.err, f"scripts/{script} printed a secret marker"
    assert len(RUNS) >= 10


def test_aws_errors_are_classified(run):
    # Nothing listens on this port: a network failure, not "are AWS credentials configured?".
    r = run("deploy", "--only", "artifacts", "--regions", "us-east-1", "--accounts", ACCOUNT, "--bucket-prefix", PREFIX,
            env={"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_MAX_ATTEMPTS": "1"})
    assert r.code == 1 and "[network]" in r.err and "credentials were not the problem" in r.err, r
    r = run("publish", "--zip", "/dev/null", "--bucket-prefix", PREFIX, "--regions", "us-east-1")
    assert r.code == 2
