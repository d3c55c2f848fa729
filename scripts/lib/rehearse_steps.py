"""Steps of scripts/rehearse that need more than bash: a free loopback port, waiting for the
emulator, seeding instances, the environment the deployed function runs with, the report.

stdlib only; AWS calls are the aws CLI's, made by scripts/rehearse.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import socket
import sys
import time
import urllib.error
import urllib.request
import zipfile


def cmd_free_port(_a) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])


def cmd_wait(a) -> None:
    deadline = time.monotonic() + a.seconds
    while True:
        try:
            urllib.request.urlopen(a.url + "/moto-api/data.json", timeout=2).read()
            return
        except (urllib.error.URLError, ConnectionError, OSError):
            if time.monotonic() > deadline:
                print(f"the emulator on {a.url} did not answer within {a.seconds} s", file=sys.stderr)
                sys.exit(1)
            time.sleep(0.2)


def cmd_seeds(_a) -> None:
    """One line per instance to launch: NAME<TAB>TAGS (aws CLI shorthand for --tag-specifications)."""
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)

    def at(days: int) -> str:
        return (now + dt.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")

    rows = [
        ("expired-build-box", f"termination_date={at(-2)}"),
        ("expiring-tomorrow", f"termination_date={at(1)}"),
        ("long-lived-db", f"termination_date={at(90)}"),
        ("kept-forever", "termination_date=indefinite"),
        ("untagged-new", ""),
    ]
    for name, tag in rows:
        tags = [f"{{Key=Name,Value={name}}}", "{Key=owner,Value=kim@example.com}"]
        if tag:
            k, v = tag.split("=", 1)
            tags.append(f"{{Key={k},Value={v}}}")
        print(f"{name}\tResourceType=instance,Tags=[{','.join(tags)}]")


def cmd_function_env(a) -> None:
    """The deployed function's environment (get-function-configuration JSON), plus what points it at
    the emulator: endpoint, test credentials, region, and no shared config from this machine."""
    cfg = json.load(open(a.config, encoding="utf-8"))
    env = dict(cfg.get("Environment", {}).get("Variables", {}))
    nowhere = "/nonexistent/ec2-reaper-rehearsal/aws"
    env.update({"AWS_ENDPOINT_URL": a.endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_SESSION_TOKEN": "testing", "AWS_REGION": a.region, "AWS_DEFAULT_REGION": a.region,
                "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": f"{nowhere}/config",
                "AWS_SHARED_CREDENTIALS_FILE": f"{nowhere}/credentials",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(cfg.get("MemorySize", 128)),
                "AWS_LAMBDA_FUNCTION_TIMEOUT": str(cfg.get("Timeout", 300))})
    json.dump(env, open(a.out, "w", encoding="utf-8"), indent=1, sort_keys=True)
    shown = {k: ("(secret, not shown)" if k == "SLACKWEBHOOK" and v else v)
             for k, v in sorted(env.items()) if not k.startswith("AWS_")}
    for k, v in shown.items():
        print(f"  {k}={v}")


def cmd_event(a) -> None:
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    json.dump({"version": "0", "id": "00000000-0000-4000-8000-000000000001", "detail-type": "Scheduled Event",
               "source": "aws.events", "account": a.account, "time": now, "region": a.region,
               "resources": [f"arn:aws:events:{a.region}:{a.account}:rule/ec2-reaper-schedule"], "detail": {}},
              open(a.out, "w", encoding="utf-8"))


def cmd_field(a) -> None:
    """A value from a JSON file by dotted path; a list of ParameterKey/ParameterValue pairs is
    looked up by key."""
    value = json.load(open(a.file, encoding="utf-8"))
    for part in a.path.split("."):
        if isinstance(value, list):
            value = {p["ParameterKey"]: p.get("ParameterValue") for p in value}
        value = value[part]
    print(value)


def cmd_unzip(a) -> None:
    with zipfile.ZipFile(a.zip) as z:
        if z.namelist() != ["bootstrap"]:
            sys.exit(f"the zip must hold exactly one file, bootstrap; it holds {z.namelist()}")
        z.extract("bootstrap", a.dir)


def cmd_report(a) -> None:
    """The verdict table of the report; exit 1 unless every seeded instance got a verdict."""
    report = json.load(open(a.report, encoding="utf-8"))
    instances = report.get("instances", [])
    print(f"run {report.get('run_id')} in {report.get('account')}/{report.get('region')}: mode {report.get('mode')}, "
          f"trigger {report.get('trigger')}, {report.get('instances_judged')} instances judged")
    for i in sorted(instances, key=lambda i: i.get("name") or ""):
        outcome = i.get("outcome") or "-"
        print(f"  {i.get('name') or i['id']:<20} {i['verdict']:<12} {str(outcome):<12} {i.get('reason', '')}")
    for e in report.get("errors", []):
        print(f"  error: {e}")
    verdicts = report.get("counts", {}).get("verdicts", {})
    print("  verdicts: " + ", ".join(f"{k} {v}" for k, v in sorted(verdicts.items())) +
          " (kept instances are counted, not listed)")
    judged = report.get("instances_judged", 0)
    if judged < len(a.expect) or report.get("errors"):
        print(f"rehearse: the report judged {judged} of the {len(a.expect)} seeded instances, errors: "
              f"{report.get('errors')}", file=sys.stderr)
        sys.exit(1)


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("free-port").set_defaults(fn=cmd_free_port)
    s = sub.add_parser("wait")
    s.add_argument("url")
    s.add_argument("--seconds", type=int, default=30)
    s.set_defaults(fn=cmd_wait)
    sub.add_parser("seeds").set_defaults(fn=cmd_seeds)
    s = sub.add_parser("function-env")
    s.add_argument("config")
    s.add_argument("out")
    s.add_argument("--endpoint", required=True)
    s.add_argument("--region", required=True)
    s.set_defaults(fn=cmd_function_env)
    s = sub.add_parser("event")
    s.add_argument("out")
    s.add_argument("--account", required=True)
    s.add_argument("--region", required=True)
    s.set_defaults(fn=cmd_event)
    s = sub.add_parser("field")
    s.add_argument("file")
    s.add_argument("path")
    s.set_defaults(fn=cmd_field)
    s = sub.add_parser("unzip")
    s.add_argument("zip")
    s.add_argument("dir")
    s.set_defaults(fn=cmd_unzip)
    s = sub.add_parser("report")
    s.add_argument("report")
    s.add_argument("--expect", nargs="*", default=[])
    s.set_defaults(fn=cmd_report)
    a = p.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
