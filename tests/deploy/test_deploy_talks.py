"""Deploys that talk (issue 20 items 2, 4, 5; issue 19 item 6), with the real scripts against moto:
progress and summaries per StackSet operation, --max-concurrent / --failure-tolerance, a deploy
that reaches no function fails, --region spelled one way, suggestions for misspelt flags and
parameter keys, every parameter checked by the template's rules and the function's own
validators before any StackSet is touched, and publish and deploy agreeing on every bucket state.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ACCOUNT, ROOT, WEBHOOK, versioned

sys.path.insert(0, str(ROOT / "scripts/lib"))
import deploy_steps  # noqa: E402  (scripts/lib is not a package)

PREFIX = "talk-test"
REAPER_SS = "talk-reaper"
ARTIFACTS_SS = "talk-artifacts"
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:reaper-webhook-AbCdEf"


def names(moto):
    return [s["StackSetName"] for s in moto.client("cloudformation").list_stack_sets()["Summaries"]
            if s["Status"] == "ACTIVE"]


# StackSets a refused deploy must never create (no other test creates them).
NEG_REAPER, NEG_ARTIFACTS = "talk-neg-reaper", "talk-neg-artifacts"


def reaper_args(*extra, regions="us-east-1"):
    return ("--region", regions, "--accounts", ACCOUNT, "--bucket-prefix", PREFIX, "--stack-set", NEG_REAPER,
            "--artifacts-stack-set", NEG_ARTIFACTS, "--artifact-key", "reaper/x/bootstrap.zip", *extra)


def nothing_created(moto) -> bool:
    return NEG_REAPER not in names(moto) and NEG_ARTIFACTS not in names(moto)


# ---- one spelling of --region, suggestions -------------------------------------------------------

def test_region_is_repeatable_and_comma_separated(moto, run):
    moto.reset()
    r = run("deploy", "--only", "artifacts", "--region", "us-east-1,eu-west-1", "--region", "ap-southeast-2",
            "--accounts", ACCOUNT, "--bucket-prefix", PREFIX, "--artifacts-stack-set", ARTIFACTS_SS, check=True)
    regions = sorted(s["Region"] for s in
                     moto.client("cloudformation").list_stack_instances(StackSetName=ARTIFACTS_SS)["Summaries"])
    assert regions == ["ap-southeast-2", "eu-west-1", "us-east-1"]
    assert "deprecated" not in r.err


def test_regions_still_works_with_one_deprecation_line(moto, run):
    r = run("deploy", "--only", "artifacts", "--regions", "us-east-1", "--regions", "eu-west-1",
            "--accounts", ACCOUNT, "--bucket-prefix", PREFIX, "--artifacts-stack-set", ARTIFACTS_SS, check=True)
    assert r.err.count("--regions is deprecated: use --region") == 1, r.err


@pytest.mark.parametrize("script,args,wrong,meant", [
    ("deploy", ["--regoin", "us-east-1"], "--regoin", "--region"),
    ("deploy", ["--region", "us-east-1", "--accounts", ACCOUNT, "--max-concurent", "2"], "--max-concurent",
     "--max-concurrent"),
    ("publish", ["--bucket-prefx", "x"], "--bucket-prefx", "--bucket-prefix"),
    ("golive", ["--stak-set", "x"], "--stak-set", "--stack-set"),
    ("invoke", ["--payload-fil", "x"], "--payload-fil", "--payload-file"),
])
def test_a_misspelt_flag_gets_a_suggestion(run, script, args, wrong, meant):
    r = run(script, *args)
    assert r.code == 2, r
    assert f"unknown argument '{wrong}' (did you mean {meant}?)" in r.err, r.err


def test_a_misspelt_parameter_key_gets_a_suggestion(moto, run):
    r = run("deploy", *reaper_args("--param", "MaxStop=5"))
    assert r.code == 2, r
    assert "--param MaxStop: unknown parameter; did you mean MaxStops?" in r.err, r.err
    assert nothing_created(moto)


# ---- template rules and the function's own validators --------------------------------------------

def test_webhook_file_and_secret_arn_together_break_the_template_rule(moto, run, tmp_path):
    hook = tmp_path / "hook"
    hook.write_text(WEBHOOK)
    r = run("deploy", *reaper_args("--slack-webhook-file", str(hook), "--param", f"SlackWebhookSecretArn={SECRET_ARN}"))
    assert r.code == 2, r
    assert ("template rule OneWebhookSource: set SlackWebhook or SlackWebhookSecretArn, not both. "
            f"(SlackWebhook: set (secret, not shown); SlackWebhookSecretArn='{SECRET_ARN}')") in r.err, r.err
    assert nothing_created(moto)


def test_a_secret_key_without_its_secret_breaks_the_template_rule(moto, run):
    key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    r = run("deploy", *reaper_args("--param", f"SlackWebhookSecretKmsKeyArn={key}"))
    assert r.code == 2, r
    assert "template rule SecretKeyNeedsSecret: SlackWebhookSecretKmsKeyArn needs SlackWebhookSecretArn." in r.err


@pytest.mark.parametrize("param,var", [
    ("MaxLifetime=0m", "MAX_LIFETIME"),
    ("ActionWindow=Mon-Fri 22:00-02:00 Europe/Berlin", "ACTION_WINDOW"),
])
def test_a_value_the_function_refuses_is_refused_before_any_stackset(moto, run, param, var):
    """Both pass the template's AllowedPattern; the function refuses them at start-up. (Needs a
    reaperctl with check-config.)"""
    r = run("deploy", *reaper_args("--param", param))
    assert r.code == 2, r
    key = param.split("=")[0]
    assert "the function would refuse to start, in every account:" in r.err, r.err
    assert var in r.err and f"[--param {key}]" in r.err, r.err
    assert nothing_created(moto), "nothing may be created"


def test_a_reaperctl_without_check_config_fails_loudly(moto, run, tmp_path):
    old = tmp_path / "reaperctl"
    old.write_text("#!/bin/sh\necho \"error: unrecognized subcommand '$1'\" >&2\nexit 2\n")
    old.chmod(0o755)
    r = run("deploy", *reaper_args("--param", "MaxStops=5"), env={"REAPERCTL": str(old)})
    assert r.code == 1, r
    assert f"this reaperctl ({old}) has no check-config; rebuild it" in r.err, r.err
    assert nothing_created(moto)


# ---- operation preferences and progress --------------------------------------------------------

@pytest.mark.parametrize("mc,ft,want", [
    ("", "", {"RegionConcurrencyType": "PARALLEL"}),
    ("10", "2", {"RegionConcurrencyType": "PARALLEL", "MaxConcurrentCount": 10, "FailureToleranceCount": 2,
                 "ConcurrencyMode": "SOFT_FAILURE_TOLERANCE"}),
    ("25%", "5%", {"RegionConcurrencyType": "PARALLEL", "MaxConcurrentPercentage": 25,
                   "FailureTolerancePercentage": 5, "ConcurrencyMode": "SOFT_FAILURE_TOLERANCE"}),
    ("", "3", {"RegionConcurrencyType": "PARALLEL", "FailureToleranceCount": 3}),
])
def test_operation_preferences_as_stacksets_take_them(mc, ft, want):
    assert deploy_steps.preferences(mc, ft) == want


@pytest.mark.parametrize("args,named", [
    (["--max-concurrent", "0"], "--max-concurrent: '0' must be at least 1"),
    (["--max-concurrent", "lots"], "--max-concurrent: 'lots' is not a number of accounts"),
    (["--failure-tolerance", "101%"], "--failure-tolerance: '101%' is not a percentage from 0% to 100%"),
    (["--max-concurrent", "0%"], "--max-concurrent: '0%' is not a percentage from 1% to 100%"),
])
def test_bad_operation_preferences_are_refused(moto, run, args, named):
    r = run("deploy", "--only", "artifacts", "--region", "us-east-1", "--accounts", ACCOUNT,
            "--bucket-prefix", PREFIX, "--artifacts-stack-set", "talk-neg", *args)
    assert r.code == 2 and named in r.err, r
    assert "talk-neg" not in names(moto)


def test_preferences_and_progress_reach_every_operation(moto, run, tmp_path):
    """The real aws CLI against moto, through a pass-through that records each operation's
    preferences (moto accepts but ignores them)."""
    spy_dir = tmp_path / "bin"
    spy_dir.mkdir()
    log = tmp_path / "calls"
    real = subprocess.run(["bash", "-c", f"PATH={os.environ.get('REAPER_VENV', Path.home() / '.cache/ec2-reaper/venv')}/bin:$PATH command -v aws"],
                          capture_output=True, text=True, check=True).stdout.strip()
    spy = spy_dir / "aws"
    spy.write_text("#!/usr/bin/env bash\n"
                   "prev=''\n"
                   "for a in \"$@\"; do\n"
                   f"  if [[ $prev == --operation-preferences ]]; then echo \"$2 $(cat \"${{a#file://}}\")\" >> {log}; fi\n"
                   "  prev=$a\n"
                   "done\n"
                   f"exec {real} \"$@\"\n")
    spy.chmod(spy.stat().st_mode | stat.S_IEXEC)
    r = run("deploy", "--only", "artifacts", "--region", "us-east-1,eu-west-1", "--accounts", ACCOUNT,
            "--bucket-prefix", "talk-prefs", "--artifacts-stack-set", "talk-prefs", "--max-concurrent", "25%",
            "--failure-tolerance", "2", env={"REAPER_VENV": str(tmp_path / "novenv"),
                                             "PATH": f"{spy_dir}:{os.environ['PATH']}"}, check=True)
    calls = log.read_text().splitlines()
    assert calls, "no operation was started"
    for call in calls:
        verb, prefs = call.split(" ", 1)
        assert verb == "create-stack-instances"
        assert json.loads(prefs) == {"RegionConcurrencyType": "PARALLEL", "MaxConcurrentPercentage": 25,
                                     "FailureToleranceCount": 2, "ConcurrencyMode": "SOFT_FAILURE_TOLERANCE"}
    # The end of every operation: a summary with the counts.
    assert re.search(r"talk-prefs: operation \S+ SUCCEEDED: 2/2 accounts·regions done, 0 failed, 0 pending, \d+s",
                     r.err), r.err


def test_a_poll_prints_done_failed_pending_and_elapsed(tmp_path):
    results = tmp_path / "results.json"
    statuses = ["SUCCEEDED"] * 12 + ["FAILED"] + ["RUNNING"] * 3 + ["PENDING"] * 24
    results.write_text(json.dumps({"Summaries": [
        {"Account": f"{i:012d}", "Region": "eu-west-1", "Status": s,
         **({"StatusReason": "ResourceLogicalId:Role, ResourceType:AWS::IAM::Role, ResourceStatusReason:denied"}
            if s == "FAILED" else {})} for i, s in enumerate(statuses)]}))
    step = [sys.executable, str(ROOT / "scripts/lib/deploy_steps.py"), "progress", "op-1", str(results)]
    line = subprocess.run([*step, "--elapsed", "190"], capture_output=True, text=True, check=True).stdout
    assert line == "operation op-1: 12/40 accounts·regions done, 1 failed, 27 pending, 3m10s\n"
    summary = subprocess.run([*step, "--elapsed", "3725", "--summary", "--status", "FAILED"],
                             capture_output=True, text=True, check=True).stdout.splitlines()
    assert summary[0] == "operation op-1 FAILED: 12/40 accounts·regions done, 1 failed, 27 pending, 1h02m05s"
    assert summary[1] == ("  000000000012 eu-west-1: FAILED: ResourceLogicalId:Role, ResourceType:AWS::IAM::Role, "
                          "ResourceStatusReason:denied")


# ---- a deploy that reaches no function -----------------------------------------------------------

def test_a_service_managed_deploy_that_reaches_no_account_fails(moto, run, artifact):
    """moto, like an Organization unit without active accounts, creates no stack instance for an
    OU target. Before: 'SUCCEEDED ... in all 0 functions checked', 'deploy: done', exit 0."""
    moto.reset()
    base = ("--region", "us-east-1", "--bucket-prefix", PREFIX, "--artifacts-stack-set", ARTIFACTS_SS,
            "--stack-set", REAPER_SS)
    run("deploy", *base, "--only", "artifacts", "--accounts", ACCOUNT, check=True)
    versioned(moto, PREFIX, ["us-east-1"])
    key = run("publish", "--zip", str(artifact.path), "--bucket-prefix", PREFIX, "--region", "us-east-1",
              check=True).out.strip()
    r = run("deploy", *base, "--only", "reaper", "--org-units", "ou-abcd-12345678", "--artifact-key", key,
            "--zip", str(artifact.path))
    assert r.code == 1, r
    assert "reached no account" in r.err and "ou-abcd-12345678" in r.err, r.err
    assert "deploy: done" not in r.err and "in all 0 functions checked" not in r.err


# ---- publish and deploy agree on every bucket state ----------------------------------------------

def test_publish_and_deploy_refuse_an_unversioned_bucket_alike(moto, run, artifact):
    moto.reset()
    s3 = moto.client("s3")
    s3.create_bucket(Bucket=f"{PREFIX}-us-east-1")
    pub = run("publish", "--zip", str(artifact.path), "--bucket-prefix", PREFIX, "--region", "us-east-1")
    assert pub.code == 1, pub
    words = (f"bucket {PREFIX}-us-east-1 in us-east-1 is not versioned (never enabled): the function's code is "
             "pinned to an S3 object version")
    assert words in pub.err and "put-bucket-versioning" in pub.err, pub.err
    assert s3.list_objects_v2(Bucket=f"{PREFIX}-us-east-1").get("KeyCount", 0) == 0, "nothing may be uploaded"
    # The same object written there by other means: deploy refuses it in the same words.
    key = "reaper/manual/bootstrap.zip"
    s3.put_object(Bucket=f"{PREFIX}-us-east-1", Key=key, Body=artifact.data, Metadata={"sha256": artifact.sha256})
    dep = run("deploy", "--only", "reaper", *reaper_args()[:8], "--artifact-key", key, "--zip", str(artifact.path))
    assert dep.code == 1, dep
    assert words in dep.err, dep.err
    assert nothing_created(moto)


def test_an_object_from_before_versioning_is_never_version_none(moto, run, artifact):
    """Before: a second publish said 'already holds ... (version None); not uploading again', exit
    0, and deploy then refused the object."""
    moto.reset()
    s3 = moto.client("s3")
    bucket = f"{PREFIX}-us-east-1"
    s3.create_bucket(Bucket=bucket)
    key = "reaper/early/bootstrap.zip"
    s3.put_object(Bucket=bucket, Key=key, Body=artifact.data, Metadata={"sha256": artifact.sha256})
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    pub = run("publish", "--zip", str(artifact.path), "--bucket-prefix", PREFIX, "--region", "us-east-1",
              "--version", "early")
    assert pub.code == 1, pub
    assert "version None" not in pub.err and "not uploading again" not in pub.err
    assert f"s3://{bucket}/{key} has no version id" in pub.err and "--version NEW" in pub.err, pub.err
    # With a new key, publish uploads a pinned version and deploy accepts that very version.
    again = run("publish", "--zip", str(artifact.path), "--bucket-prefix", PREFIX, "--region", "us-east-1",
                "--version", "later", "--print-versions", check=True)
    new_key, line = again.out.strip().splitlines()
    vid = line.split()[1]
    assert vid not in ("None", "null", "")
    third = run("publish", "--zip", str(artifact.path), "--bucket-prefix", PREFIX, "--region", "us-east-1",
                "--version", "later", check=True)
    assert f"already holds sha256 {artifact.sha256} (version {vid}); not uploading again" in third.err


# ---- invoke on the emulator ------------------------------------------------------------------------

def test_invoke_on_the_emulator_says_what_it_cannot_do(moto, run, artifact):
    """moto without Docker cannot run a zip; before, invoke said 'the function failed (Handled)'."""
    import urllib.request
    urllib.request.urlopen(urllib.request.Request(moto.url + "/moto-api/config", method="POST",
                                                  data=json.dumps({"lambda": {"use_docker": True}}).encode()))
    lam = moto.client("lambda", "eu-west-1")
    role = moto.client("iam").create_role(RoleName="talk-invoke", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    lam.create_function(FunctionName="talk-invoke", Runtime="provided.al2023", Handler="bootstrap", Role=role,
                        Code={"ZipFile": artifact.data})
    r = run("invoke", "--region", "eu-west-1", "--function-name", "talk-invoke")
    assert r.code == 1, r
    assert "the function failed (Handled)" not in r.err
    assert "did not run the function" in r.err and "make rehearse" in r.err, r.err
