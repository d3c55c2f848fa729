"""The copier custom resource's Python, taken from the ZipFile in deploy_to_s3.yaml (the single
source of truth: nothing here is a copy), run against moto S3. A local HTTP server on
127.0.0.1 stands in for CloudFormation's pre-signed ResponseURL and records every response."""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cfnlint.decode import decode

from conftest import ROOT

TEMPLATE = ROOT / "cloudformation/deploy_to_s3.yaml"
STACK_ID = "arn:aws:cloudformation:eu-west-1:123456789012:stack/StackSet-ec2-reaper-artifacts/0f0e"


def copier_source() -> str:
    tpl, matches = decode(str(TEMPLATE))
    assert not matches, matches
    code = tpl["Resources"]["CopierFunction"]["Properties"]["Code"]["ZipFile"]
    assert isinstance(code, str), "ZipFile must be literal text (no !Sub) so it can be tested as is"
    return code


def test_copier_fits_cloudformations_zipfile_limit():
    assert len(copier_source().encode()) <= 4096


@pytest.fixture
def copier(tmp_path, monkeypatch, moto):
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.url)
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "eu-west-1"}.items():
        monkeypatch.setenv(k, v)
    path = tmp_path / "index.py"
    path.write_text(copier_source())
    spec = importlib.util.spec_from_file_location("copier_index", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class ResponseRecorder:
    """Plays CloudFormation's ResponseURL: records each PUT body."""

    def __init__(self):
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self):  # noqa: N802
                n = int(self.headers["Content-Length"])
                recorder.bodies.append(json.loads(self.rfile.read(n)))
                recorder.headers.append(dict(self.headers))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/response?X-Amz-Signature=abc"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def cfn():
    r = ResponseRecorder()
    yield r
    r.close()


class Context:
    log_stream_name = "2024/01/01/[$LATEST]abc"
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:StackSet-copier"

    def __init__(self, remaining_ms=300_000):
        self.deadline = time.monotonic() + remaining_ms / 1000

    def get_remaining_time_in_millis(self):
        return int((self.deadline - time.monotonic()) * 1000)


def event(cfn, request_type, props, physical_id=None, request_id="req-1"):
    ev = {"RequestType": request_type, "ResponseURL": cfn.url, "StackId": STACK_ID, "RequestId": request_id,
          "LogicalResourceId": "ArtifactCopy", "ResourceType": "Custom::ArtifactCopy",
          "ResourceProperties": {"ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:x", **props}}
    if physical_id:
        ev["PhysicalResourceId"] = physical_id
    return ev


@pytest.fixture
def buckets(moto):
    moto.reset()
    src, dst = moto.client("s3", "us-east-1"), moto.client("s3", "eu-west-1")
    src.create_bucket(Bucket="reaper-source")
    dst.create_bucket(Bucket="reaper-dst-eu-west-1", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    dst.put_bucket_versioning(Bucket="reaper-dst-eu-west-1", VersioningConfiguration={"Status": "Enabled"})
    src.put_object(Bucket="reaper-source", Key="reaper/v1-aaaa/bootstrap.zip", Body=b"zip v1",
                   Metadata={"sha256": "1" * 64})
    src.put_object(Bucket="reaper-source", Key="reaper/v2-bbbb/bootstrap.zip", Body=b"zip v2")
    return src, dst


PROPS = {"SourceBucket": "reaper-source", "DestinationBucket": "reaper-dst-eu-west-1"}


def versions(dst):
    out = dst.list_object_versions(Bucket="reaper-dst-eu-west-1")
    return sorted((v["Key"], v["VersionId"]) for v in out.get("Versions", []))


def test_create_copies_update_copies_new_key_delete_removes_only_its_own(copier, cfn, buckets):
    _, dst = buckets
    # Someone else's objects in the same bucket, one of them at a key the copier will also write.
    dst.put_object(Bucket="reaper-dst-eu-west-1", Key="reaper/published/bootstrap.zip", Body=b"published")
    dst.put_object(Bucket="reaper-dst-eu-west-1", Key="reaper/v1-aaaa/bootstrap.zip", Body=b"published too")
    dst.put_object(Bucket="reaper-dst-eu-west-1", Key="notes.txt", Body=b"keep")
    others = versions(dst)

    copier.handler(event(cfn, "Create", {**PROPS, "SourceKey": "reaper/v1-aaaa/bootstrap.zip"}), Context())
    assert len(cfn.bodies) == 1
    created = cfn.bodies[0]
    assert created["Status"] == "SUCCESS", created
    assert created["RequestId"] == "req-1" and created["LogicalResourceId"] == "ArtifactCopy"
    assert created["StackId"] == STACK_ID
    pid = created["PhysicalResourceId"]
    assert pid.startswith("copier-")
    assert created["Data"]["Key"] == "reaper/v1-aaaa/bootstrap.zip"
    got = dst.get_object(Bucket="reaper-dst-eu-west-1", Key="reaper/v1-aaaa/bootstrap.zip")
    assert got["Body"].read() == b"zip v1"
    # The publisher's sha256 survives the copy (scripts/publish compares it), next to the mark.
    assert got["Metadata"] == {"sha256": "1" * 64, "reaper-copied-by": pid}
    assert got["ContentType"] == "application/zip"

    copier.handler(event(cfn, "Update", {**PROPS, "SourceKey": "reaper/v2-bbbb/bootstrap.zip"}, pid, "req-2"), Context())
    assert len(cfn.bodies) == 2
    updated = cfn.bodies[1]
    assert updated["Status"] == "SUCCESS" and updated["PhysicalResourceId"] == pid, "physical id must be stable"
    assert dst.get_object(Bucket="reaper-dst-eu-west-1", Key="reaper/v2-bbbb/bootstrap.zip")["Body"].read() == b"zip v2"

    copier.handler(event(cfn, "Delete", {**PROPS, "SourceKey": "reaper/v2-bbbb/bootstrap.zip"}, pid, "req-3"), Context())
    assert len(cfn.bodies) == 3
    deleted = cfn.bodies[2]
    assert deleted["Status"] == "SUCCESS" and deleted["PhysicalResourceId"] == pid
    assert versions(dst) == others, "delete must remove the copier's two copies and nothing else"
    # And the current object at the shared key is the one someone else published.
    assert dst.get_object(Bucket="reaper-dst-eu-west-1", Key="reaper/v1-aaaa/bootstrap.zip")["Body"].read() == b"published too"


def test_missing_source_key_sends_failed_exactly_once(copier, cfn, buckets):
    copier.handler(event(cfn, "Create", {**PROPS, "SourceKey": "reaper/nope/bootstrap.zip"}), Context())
    time.sleep(0.2)  # a stray second response would have arrived by now
    assert len(cfn.bodies) == 1
    assert cfn.bodies[0]["Status"] == "FAILED"
    assert "NoSuchKey" in cfn.bodies[0]["Reason"] or "Not Found" in cfn.bodies[0]["Reason"], cfn.bodies[0]
    assert cfn.bodies[0]["PhysicalResourceId"].startswith("copier-")


def test_delete_after_bucket_is_gone_succeeds(copier, cfn, buckets):
    props = {**PROPS, "DestinationBucket": "reaper-never-created", "SourceKey": "reaper/v1-aaaa/bootstrap.zip"}
    copier.handler(event(cfn, "Delete", props, "copier-0123456789abcdef"), Context())
    assert [b["Status"] for b in cfn.bodies] == ["SUCCESS"]


def test_near_timeout_sends_failed_once_and_the_late_finish_sends_nothing(copier, cfn, buckets, monkeypatch):
    real_client = copier.boto3.client

    class Slow:
        def __init__(self):
            self.inner = real_client("s3")

        def head_object(self, **kw):
            return self.inner.head_object(**kw)

        def copy_object(self, **kw):
            time.sleep(2.5)  # longer than the time left before the copier's own deadline
            return self.inner.copy_object(**kw)

    monkeypatch.setattr(copier.boto3, "client", lambda *_a, **_k: Slow())
    # 11 s left: the copier answers at remaining - 10 s = 1 s, before the copy finishes.
    copier.handler(event(cfn, "Create", {**PROPS, "SourceKey": "reaper/v1-aaaa/bootstrap.zip"}, request_id="req-t"),
                   Context(remaining_ms=11_000))
    time.sleep(0.3)
    assert len(cfn.bodies) == 1, cfn.bodies
    assert cfn.bodies[0]["Status"] == "FAILED" and "timed out" in cfn.bodies[0]["Reason"]


def test_response_is_a_put_cloudformation_accepts(copier, cfn, buckets):
    copier.handler(event(cfn, "Create", {**PROPS, "SourceKey": "reaper/v1-aaaa/bootstrap.zip"}, request_id="req-h"),
                   Context())
    # A pre-signed S3 URL rejects a Content-Type it was not signed with: it must be empty.
    assert cfn.headers[0].get("Content-Type", "") == ""
    assert set(cfn.bodies[0]) == {"Status", "Reason", "PhysicalResourceId", "StackId", "RequestId",
                                  "LogicalResourceId", "Data"}
