"""Small steps of scripts/deploy, publish, golive and invoke that need more than bash: JSON in and
out, hashing, suggestions for misspelt flags, StackSet operation progress.

stdlib only. Each subcommand is one step; exit status 0 = yes/ok, 1 = no, 2 = bad input.
"""

from __future__ import annotations

import argparse
import base64
import difflib
import json
import re
import stat
import sys
import zipfile


def _load(path: str):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _dump(value, path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f)


def suggestion(word: str, candidates: list[str]) -> str | None:
    """The candidate word is most likely a misspelling of (case-insensitive), if any."""
    lowered = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.7)
    return lowered[close[0]] if close else None


def cmd_suggest(a) -> None:
    """Prints ' (did you mean X?)' or nothing."""
    best = suggestion(a.word, a.candidates)
    if best and best != a.word:
        print(f" (did you mean {best}?)", end="")


def cmd_secrets_file(a) -> None:
    """The webhook arrives on stdin (never argv) and goes into a JSON file for stackset_plan.py."""
    _dump({"SlackWebhook": sys.stdin.read()}, a.out)


def cmd_b64sha(a) -> None:
    """Hex sha256 -> the base64 form Lambda reports as CodeSha256."""
    print(base64.b64encode(bytes.fromhex(a.hex)).decode())


def cmd_plan(a) -> None:
    """One field of a stackset_plan.py plan: action, changes (one line), or parameters (to a file)."""
    plan = _load(a.plan)
    if a.field == "action":
        print(plan["action"])
    elif a.field == "changes":
        print("; ".join(plan["changes"]))
    else:
        _dump(plan["parameters"], a.out)


def _pin(overrides_path: str) -> dict[str, str]:
    return {p["ParameterKey"]: p["ParameterValue"] for p in _load(overrides_path)}


def cmd_pin_write(a) -> None:
    _dump([{"ParameterKey": "ArtifactKey", "ParameterValue": a.key},
           {"ParameterKey": "ArtifactVersion", "ParameterValue": a.version}], a.out)


def cmd_pin_version(a) -> None:
    print(_pin(a.overrides)["ArtifactVersion"])


def cmd_pin_matches(a) -> None:
    """Exit 0 when the stack instance (describe-stack-instance JSON) already carries the pin."""
    inst = _load(a.instance)["StackInstance"]
    have = {p["ParameterKey"]: p.get("ParameterValue") for p in inst.get("ParameterOverrides", [])}
    sys.exit(0 if all(have.get(k) == v for k, v in _pin(a.overrides).items()) else 1)


def cmd_current_artifact(a) -> None:
    """'PREFIX KEY' from describe-stack-set JSON ('-' for a value the StackSet does not have)."""
    params = {p["ParameterKey"]: p.get("ParameterValue", "")
              for p in _load(a.stack_set)["StackSet"].get("Parameters", [])}
    print(params.get("ArtifactBucketPrefix") or "-", params.get("ArtifactKey") or "-")


_AMOUNT = re.compile(r"^([0-9]{1,4})(%?)$")


def preferences(max_concurrent: str, failure_tolerance: str) -> dict:
    """StackSets OperationPreferences from N or N% for each; ValueError names what is wrong.
    Empty leaves AWS's default (1 account at a time, 0 failures tolerated)."""
    prefs: dict = {"RegionConcurrencyType": "PARALLEL"}
    for flag, value, base, low in (("--max-concurrent", max_concurrent, "MaxConcurrent", 1),
                                   ("--failure-tolerance", failure_tolerance, "FailureTolerance", 0)):
        if value == "":
            continue
        m = _AMOUNT.match(value)
        if not m:
            raise ValueError(f"{flag}: {value!r} is not a number of accounts (e.g. 10) or a percentage (e.g. 25%)")
        n, pct = int(m.group(1)), m.group(2) == "%"
        if pct and not low <= n <= 100:
            raise ValueError(f"{flag}: {value!r} is not a percentage from {low}% to 100%")
        if not pct and n < low:
            raise ValueError(f"{flag}: {value!r} must be at least {low}")
        prefs[f"{base}{'Percentage' if pct else 'Count'}"] = n
    if max_concurrent:
        # STRICT_FAILURE_TOLERANCE (AWS's default) caps concurrency at FailureTolerance + 1, which
        # would silently turn --max-concurrent 20 into 1: the tolerance still stops the operation.
        prefs["ConcurrencyMode"] = "SOFT_FAILURE_TOLERANCE"
    return prefs


def cmd_preferences(a) -> None:
    try:
        print(json.dumps(preferences(a.max_concurrent, a.failure_tolerance), separators=(",", ":")))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def _elapsed(seconds: int) -> str:
    h, rest = divmod(max(seconds, 0), 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def progress(summaries: list[dict]) -> dict:
    """Counts of list-stack-set-operation-results summaries: done / failed / pending / total."""
    done = sum(1 for s in summaries if s.get("Status") == "SUCCEEDED")
    failed = sum(1 for s in summaries if s.get("Status") in ("FAILED", "CANCELLED"))
    return {"done": done, "failed": failed, "pending": len(summaries) - done - failed, "total": len(summaries),
            "failures": [s for s in summaries if s.get("Status") in ("FAILED", "CANCELLED")]}


def cmd_progress(a) -> None:
    """One line per poll: 'operation ID: 12/40 accounts·regions done, 1 failed, 27 pending, 3m10s'.
    With --summary, the final line and one line per failed account and region."""
    try:
        data = _load(a.results) if a.results else {}
    except ValueError:
        data = {}
    p = progress(data.get("Summaries", []))
    counts = (f"{p['done']}/{p['total']} accounts·regions done, {p['failed']} failed, "
              f"{p['pending']} pending, {_elapsed(a.elapsed)}")
    if not a.summary:
        print(f"operation {a.operation}: {counts}")
        return
    print(f"operation {a.operation} {a.status}: {counts}")
    for s in p["failures"]:
        print(f"  {s.get('Account', '?')} {s.get('Region', '?')}: {s.get('Status')}: "
              f"{s.get('StatusReason') or 'no reason given'}")
    if a.count_file:
        with open(a.count_file, "w", encoding="utf-8") as f:
            f.write(f"{p['total']}\n")


def cmd_zip_check(a) -> None:
    """Exit 0 when the file is a zip with an executable 'bootstrap' at its root."""
    try:
        info = zipfile.ZipFile(a.zip).getinfo("bootstrap")
    except (zipfile.BadZipFile, KeyError, OSError):
        sys.exit(1)
    mode = info.external_attr >> 16
    sys.exit(0 if mode == 0 or mode & stat.S_IXUSR else 1)


def cmd_json_object(_a) -> None:
    """Exit 0 when stdin is a JSON object."""
    try:
        sys.exit(0 if isinstance(json.load(sys.stdin), dict) else 1)
    except ValueError:
        sys.exit(1)


def cmd_golive_params(a) -> None:
    """LiveMode=VALUE and UsePreviousValue for every other parameter; prints the current LiveMode."""
    ss = _load(a.stack_set)["StackSet"]
    params = {p["ParameterKey"]: p.get("ParameterValue") for p in ss.get("Parameters", [])}
    out = [{"ParameterKey": "LiveMode", "ParameterValue": a.value}]
    out += [{"ParameterKey": k, "UsePreviousValue": True} for k in params if k != "LiveMode"]
    _dump(out, a.out)
    print(params.get("LiveMode", "false"))


def cmd_invoke_output(a) -> None:
    """The function's answer on stdout; its log tail (--logs) and any function error on stderr."""
    meta = _load(a.meta)
    with open(a.out, "rb") as f:
        raw = f.read().decode("utf-8", "replace")
    try:
        answer = json.loads(raw)
        print(json.dumps(answer, indent=2))
    except ValueError:
        answer = None
        print(raw)
    if a.logs and meta.get("LogResult"):
        sys.stderr.write(base64.b64decode(meta["LogResult"]).decode("utf-8", "replace"))
    if not meta.get("FunctionError"):
        return
    if a.emulator:
        # moto runs Lambda code only inside Docker; without it the "error" is moto's, not ours.
        sys.stderr.write(
            f"invoke: the local emulator at {a.emulator} did not run the function: it cannot run a Lambda "
            f"zip here (moto needs Docker for that), so this answer is the emulator's, not the reaper's.\n"
            "invoke: to run the published zip against the emulator, use `make rehearse` (it runs the "
            "bootstrap from the zip with the deployed function's environment and prints its report).\n")
        sys.exit(1)
    kind = meta["FunctionError"]
    what = ("it raised an error it reported itself" if kind == "Handled"
            else "it crashed, timed out or failed to start")
    etype = answer.get("errorType") if isinstance(answer, dict) else None
    sys.stderr.write(f"invoke: the function failed ({kind}): {what}"
                     + (f"; error type {etype}" if etype else "") + "; its error is above\n")
    sys.exit(1)


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("suggest")
    s.add_argument("word")
    s.add_argument("candidates", nargs="*")
    s.set_defaults(fn=cmd_suggest)
    s = sub.add_parser("secrets-file")
    s.add_argument("out")
    s.set_defaults(fn=cmd_secrets_file)
    s = sub.add_parser("b64sha")
    s.add_argument("hex")
    s.set_defaults(fn=cmd_b64sha)
    s = sub.add_parser("plan")
    s.add_argument("plan")
    s.add_argument("field", choices=["action", "changes", "parameters"])
    s.add_argument("out", nargs="?", default="")
    s.set_defaults(fn=cmd_plan)
    s = sub.add_parser("pin-write")
    s.add_argument("key")
    s.add_argument("version")
    s.add_argument("out")
    s.set_defaults(fn=cmd_pin_write)
    s = sub.add_parser("pin-version")
    s.add_argument("overrides")
    s.set_defaults(fn=cmd_pin_version)
    s = sub.add_parser("pin-matches")
    s.add_argument("instance")
    s.add_argument("overrides")
    s.set_defaults(fn=cmd_pin_matches)
    s = sub.add_parser("current-artifact")
    s.add_argument("stack_set")
    s.set_defaults(fn=cmd_current_artifact)
    s = sub.add_parser("preferences")
    s.add_argument("--max-concurrent", default="")
    s.add_argument("--failure-tolerance", default="")
    s.set_defaults(fn=cmd_preferences)
    s = sub.add_parser("progress")
    s.add_argument("operation")
    s.add_argument("results", nargs="?", default="")
    s.add_argument("--elapsed", type=int, default=0)
    s.add_argument("--summary", action="store_true")
    s.add_argument("--status", default="")
    s.add_argument("--count-file", default="")
    s.set_defaults(fn=cmd_progress)
    s = sub.add_parser("zip-check")
    s.add_argument("zip")
    s.set_defaults(fn=cmd_zip_check)
    s = sub.add_parser("json-object")
    s.set_defaults(fn=cmd_json_object)
    s = sub.add_parser("golive-params")
    s.add_argument("stack_set")
    s.add_argument("value")
    s.add_argument("out")
    s.set_defaults(fn=cmd_golive_params)
    s = sub.add_parser("invoke-output")
    s.add_argument("meta")
    s.add_argument("out")
    s.add_argument("--logs", action="store_true")
    s.add_argument("--emulator", default="")
    s.set_defaults(fn=cmd_invoke_output)
    a = p.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
