"""Plans for scripts/deploy and scripts/golive: parameter checks against a template's own
constraints and Rules and against the function's own validators (reaperctl check-config), the
parameter list for create or update, and which stack instances are missing.

stdlib + PyYAML only (awscli v1 depends on PyYAML, so it is wherever the CLI is).
Exit status: 0 ok, 2 a parameter is wrong (the message names it).
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import subprocess
import sys
import urllib.parse

import yaml


class _CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation YAML; short-form intrinsics (!Sub, !If...) become plain values,
    which is all the Parameters section needs."""


def _any_tag(loader, _suffix, node):
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)


_CfnLoader.add_multi_constructor("!", _any_tag)


class _IntrinsicLoader(yaml.SafeLoader):
    """Reads CloudFormation YAML keeping short-form intrinsics as their long form
    ({"Fn::Equals": [...]}, {"Ref": ...}), which Rules and the function's Environment need."""


def _intrinsic(loader, suffix, node):
    value = _any_tag(loader, suffix, node)
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_IntrinsicLoader.add_multi_constructor("!", _intrinsic)

MASKED = "****"  # what DescribeStackSet shows for a NoEcho parameter


def load_parameters(template_path: str) -> dict:
    with open(template_path, encoding="utf-8") as f:
        doc = yaml.load(f, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    return doc.get("Parameters", {}) or {}


def load_template(template_path: str) -> dict:
    with open(template_path, encoding="utf-8") as f:
        return yaml.load(f, Loader=_IntrinsicLoader) or {}  # noqa: S506 - SafeLoader subclass


def did_you_mean(word: str, candidates) -> str:
    lowered = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.7)
    return f"; did you mean {lowered[close[0]]}?" if close else ""


def shown(spec: dict, item: str) -> str:
    """How a value may appear in a message: a NoEcho value never does."""
    return "(a NoEcho value, not shown)" if spec.get("NoEcho") else repr(item)


def check_value(name: str, spec: dict, value: str) -> str | None:
    """None when CloudFormation would accept value for this parameter, else why not."""
    kind = spec.get("Type", "String")
    hint = spec.get("ConstraintDescription", "")
    items = value.split(",") if kind == "CommaDelimitedList" else [value]
    if kind == "CommaDelimitedList" and value == "":
        items = []
    for item in items:
        if spec.get("NoEcho"):
            # Same checks, but the message must not carry the value (nor a pattern it fails).
            allowed_ok = spec.get("AllowedValues") is None or item in [str(a) for a in spec["AllowedValues"]]
            pattern_ok = spec.get("AllowedPattern") is None or re.fullmatch(spec["AllowedPattern"], item) is not None
            if not (allowed_ok and pattern_ok):
                return f"{name}: the value given (NoEcho, not shown) is not accepted" + (f": {hint}" if hint else "")
            continue
        allowed = spec.get("AllowedValues")
        if allowed is not None and item not in [str(a) for a in allowed]:
            return f"{name}={item!r} is not one of {', '.join(str(a) for a in allowed)}" + (
                f" ({hint})" if hint else "")
        pattern = spec.get("AllowedPattern")
        if pattern is not None and re.fullmatch(pattern, item) is None:
            return f"{name}={item!r} does not match {pattern}" + (f": {hint}" if hint else "")
        if kind == "Number":
            try:
                num = float(item)
            except ValueError:
                return f"{name}={item!r} is not a number" + (f" ({hint})" if hint else "")
            lo, hi = spec.get("MinValue"), spec.get("MaxValue")
            if (lo is not None and num < float(lo)) or (hi is not None and num > float(hi)):
                return f"{name}={item!r} is outside {lo}..{hi}" + (f" ({hint})" if hint else "")
        for key, test in (("MinLength", lambda n: len(item) < n), ("MaxLength", lambda n: len(item) > n)):
            if key in spec and test(int(spec[key])):
                return f"{name}={item!r} breaks {key} {spec[key]}" + (f" ({hint})" if hint else "")
    return None


def parse_sets(pairs: list[str], params: dict, flag: str, hint: dict | None = None,
               secrets: dict[str, str] | None = None) -> dict[str, str]:
    """pairs come from the command line, secrets from a file: a NoEcho parameter is accepted only
    from the latter, so it never sits in shell history or in `ps`."""
    out: dict[str, str] = {}
    errors = []
    for pair in pairs:
        if "=" not in pair:
            errors.append(f"{flag} {pair.split('=')[0]!r}: expected Key=Value")
            continue
        key, value = pair.split("=", 1)
        if key not in params:
            errors.append(f"{flag} {key}: unknown parameter{did_you_mean(key, params)} "
                          f"(the template takes {', '.join(sorted(params))})")
            continue
        if params[key].get("NoEcho"):
            where = (hint or {}).get(key, "a file or an environment variable")
            errors.append(f"{flag} {key}: a secret (NoEcho) is never taken from the command line; use {where}")
            continue
        why = check_value(key, params[key], value)
        if why:
            errors.append(f"{flag} {why}")
            continue
        out[key] = value
    for key, value in (secrets or {}).items():
        if key not in params:
            errors.append(f"secret {key}: unknown parameter")
            continue
        why = check_value(key, {**params[key], "NoEcho": True}, value)
        if why:
            errors.append(why)
            continue
        out[key] = value
    if errors:
        for e in errors:
            print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    return out


UNKNOWN = object()  # a NoEcho value DescribeStackSet masked: this deploy cannot know it


def effective_values(params: dict, wanted: dict, current: dict | None) -> dict:
    """What every parameter will be after this deploy: given > the StackSet's > the default."""
    out = {}
    for k, spec in params.items():
        if k in wanted:
            out[k] = wanted[k]
        elif current is not None and k in current:
            out[k] = UNKNOWN if spec.get("NoEcho") and current[k] == MASKED else current[k]
        elif "Default" in spec:
            out[k] = str(spec["Default"])
        else:
            out[k] = UNKNOWN
    return out


def _evaluate(node, values: dict):
    """A Rules expression with three-valued logic: True, False, or UNKNOWN."""
    if isinstance(node, dict) and len(node) == 1:
        (fn, arg), = node.items()
        if fn == "Ref":
            return values.get(arg, UNKNOWN)
        if fn == "Fn::Equals":
            left, right = (_evaluate(x, values) for x in arg)
            return UNKNOWN if UNKNOWN in (left, right) else str(left) == str(right)
        if fn == "Fn::Not":
            inner = _evaluate(arg[0], values)
            return UNKNOWN if inner is UNKNOWN else not inner
        if fn in ("Fn::Or", "Fn::And"):
            results = [_evaluate(x, values) for x in arg]
            decisive = fn == "Fn::Or"  # True decides an Or, False an And
            if decisive in results:
                return decisive
            return UNKNOWN if UNKNOWN in results else not decisive
        return UNKNOWN
    return node


def _refs(node) -> list[str]:
    if isinstance(node, dict):
        if set(node) == {"Ref"}:
            return [node["Ref"]]
        return [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _shown_value(key: str, params: dict, values: dict) -> str:
    value = values.get(key)
    if value is UNKNOWN:
        return f"{key}: unknown" + (" (NoEcho, masked by CloudFormation)" if params.get(key, {}).get("NoEcho") else "")
    if params.get(key, {}).get("NoEcho") and value:
        return f"{key}: set (secret, not shown)"
    return f"{key}={value!r}"


def check_rules(template: dict, params: dict, values: dict) -> tuple[list[str], list[str]]:
    """The template's Rules, as CloudFormation evaluates them in every account: (errors, notes)."""
    errors, notes = [], []
    for name, rule in (template.get("Rules") or {}).items():
        if "RuleCondition" in rule and _evaluate(rule["RuleCondition"], values) is not True:
            continue
        for assertion in rule.get("Assertions", []):
            held = _evaluate(assertion["Assert"], values)
            if held is True:
                continue
            refs = sorted(set(_refs(assertion["Assert"]) + _refs(rule.get("RuleCondition", {}))))
            shown_values = "; ".join(_shown_value(k, params, values) for k in refs)
            if held is UNKNOWN:
                notes.append(f"template rule {name} not checked here ({shown_values}): "
                             f"{assertion.get('AssertDescription', '')}")
            else:
                errors.append(f"template rule {name}: {assertion.get('AssertDescription', 'not met')} "
                              f"({shown_values})")
    return errors, notes


def function_environment(template: dict) -> dict[str, str]:
    """{ENV_VAR: Parameter} from the Lambda function's Environment (only plain !Ref values)."""
    for res in (template.get("Resources") or {}).values():
        if res.get("Type") == "AWS::Lambda::Function":
            env = ((res.get("Properties") or {}).get("Environment") or {}).get("Variables") or {}
            return {k: v["Ref"] for k, v in env.items() if isinstance(v, dict) and set(v) == {"Ref"}}
    return {}


# Stands in for the webhook when the function's validators run: a secret never goes into argv.
WEBHOOK_STAND_IN = "https://hooks.slack.com/services/stand-in-for-the-secret"


def check_function(template: dict, params: dict, values: dict, reaperctl: str, flag: str,
                   actions: bool = False) -> list[str]:
    """Runs the function's own validators (reaperctl check-config) on the environment the template
    gives the function: what it would refuse at start-up, in every account."""
    mapping = function_environment(template)
    pairs, errors = [], []
    for var, param in mapping.items():
        value = values.get(param, "")
        if params.get(param, {}).get("NoEcho"):
            if value is UNKNOWN or value == "":
                value = ""
            else:
                url = urllib.parse.urlsplit(value)
                if url.scheme != "https" or not url.hostname:
                    errors.append(f"{param}: the value given (secret, not shown) is not accepted by the function: "
                                  "an https:// URL with a host (a Slack incoming webhook)")
                value = WEBHOOK_STAND_IN
        elif value is UNKNOWN:
            continue
        pairs.append(f"{var}={value}")
    try:
        kind = ["--actions"] if actions else []
        r = subprocess.run([reaperctl, "check-config", *kind, *pairs], capture_output=True, text=True, timeout=60)
    except OSError as e:
        return errors + [f"cannot run {reaperctl} check-config: {e}"]
    if r.returncode == 0:
        for line in r.stderr.splitlines():
            if line.strip():
                print(f"note: the function would start with a warning: {line}", file=sys.stderr)
        return errors
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    if r.returncode != 2:
        return errors + [f"{reaperctl} check-config failed (exit {r.returncode}): " + " / ".join(lines)]
    for line in lines:
        named = [f"{flag} {mapping[v]}" for v in mapping if re.search(rf"\b{v}\b", line)]
        where = f" [{', '.join(dict.fromkeys(named))}]" if named else ""
        scope = "" if actions else ", in every account"
        errors.append(f"the function would refuse to start{scope}: {line}{where}")
    return errors


def cmd_params(a) -> None:
    """Decide create/update/no-op and print the --parameters JSON for it."""
    params = load_parameters(a.template)
    secrets = {}
    if a.secrets_file:
        with open(a.secrets_file, encoding="utf-8") as f:
            secrets = json.load(f)
    wanted = parse_sets(a.set, params, a.flag, a.hint, secrets)
    secret_keys = set(secrets) | {k for k, s in params.items() if s.get("NoEcho")}
    current_ss = None
    if a.current:
        with open(a.current, encoding="utf-8") as f:
            current_ss = json.load(f)["StackSet"]
    current_values = None if current_ss is None else {
        p["ParameterKey"]: p.get("ParameterValue", "") for p in current_ss.get("Parameters", [])}
    template = load_template(a.template)
    values = effective_values(params, wanted, current_values)
    errors, notes = check_rules(template, params, values)
    if a.reaperctl and not errors:
        errors += check_function(template, params, values, a.reaperctl, a.flag, a.actions)
    for n in notes:
        print(f"note: {n}", file=sys.stderr)
    if errors:
        for e in errors:
            print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    if a.check_only:
        return
    if current_ss is None:
        missing = [k for k, s in params.items() if "Default" not in s and k not in wanted]
        if missing:
            print(f"error: no value for {', '.join(missing)} (no default in {a.template}); "
                  f"pass {' '.join(a.hint.get(k, f'{a.flag} {k}=...') for k in missing)}", file=sys.stderr)
            sys.exit(2)
        plist = [{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(wanted.items())]
        json.dump({"action": "create", "parameters": plist, "changes": sorted(wanted)}, sys.stdout)
        return
    current = {p["ParameterKey"]: p.get("ParameterValue", "") for p in current_ss.get("Parameters", [])}
    with open(a.template, encoding="utf-8") as f:
        body = f.read()
    changes = []
    if current_ss.get("TemplateBody", "").strip() != body.strip():
        changes.append("template")
    for k, v in sorted(wanted.items()):
        if k in secret_keys:
            # A secret is never compared in the open nor shown: DescribeStackSet masks it anyway.
            changes.append(f"{k}: set (secret, not shown)")
        elif k not in current:
            if str(params[k].get("Default", "")) != v or k in [n for n, s in params.items() if "Default" not in s]:
                changes.append(f"{k}: (default) -> {v!r}")
        elif current[k] != v:
            changes.append(f"{k}: {current[k]!r} -> {v!r}")
    missing = [k for k, s in params.items() if "Default" not in s and k not in wanted and k not in current]
    if missing:
        print(f"error: no value for {', '.join(missing)}; pass "
              f"{' '.join(a.hint.get(k, f'{a.flag} {k}=...') for k in missing)}", file=sys.stderr)
        sys.exit(2)
    plist = []
    for k in params:
        if k in wanted:
            plist.append({"ParameterKey": k, "ParameterValue": wanted[k]})
        elif k in current:
            plist.append({"ParameterKey": k, "UsePreviousValue": True})
    json.dump({"action": "update" if changes else "none", "parameters": plist, "changes": changes}, sys.stdout)


def cmd_missing(a) -> None:
    """Self-managed: print one line '<accounts csv> <regions csv>' per create-stack-instances call."""
    with open(a.existing, encoding="utf-8") as f:
        have = {(s["Account"], s["Region"]) for s in json.load(f).get("Summaries", [])}
    groups: dict[tuple[str, ...], list[str]] = {}
    for region in a.regions.split(","):
        accts = tuple(x for x in a.accounts.split(",") if (x, region) not in have)
        if accts:
            groups.setdefault(accts, []).append(region)
    for accts, regions in groups.items():
        print(",".join(accts), ",".join(regions))


def cmd_missing_ou(a) -> None:
    """Service-managed: print the regions where some requested OU has no instance yet."""
    with open(a.existing, encoding="utf-8") as f:
        summaries = json.load(f).get("Summaries", [])
    have = {(s.get("OrganizationalUnitId"), s["Region"]) for s in summaries}
    missing = [r for r in a.regions.split(",") if any((ou, r) not in have for ou in a.ous.split(","))]
    print(",".join(missing))


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("params")
    pp.add_argument("--template", required=True)
    pp.add_argument("--current", default="")
    pp.add_argument("--flag", default="--param")
    pp.add_argument("--hint", default="{}", type=json.loads)
    pp.add_argument("--check-only", action="store_true", help="only check the values given")
    pp.add_argument("--secrets-file", default="", help="JSON {Key: Value} of NoEcho values (never argv)")
    pp.add_argument("--reaperctl", default="", help="check the function's environment with REAPERCTL check-config")
    pp.add_argument("--actions", action="store_true",
                    help="the template's function is reaper-actions (check-config --actions)")
    pp.add_argument("set", nargs="*")
    pm = sub.add_parser("missing")
    pm.add_argument("--existing", required=True)
    pm.add_argument("--accounts", required=True)
    pm.add_argument("--regions", required=True)
    po = sub.add_parser("missing-ou")
    po.add_argument("--existing", required=True)
    po.add_argument("--ous", required=True)
    po.add_argument("--regions", required=True)
    a = p.parse_args()
    {"params": cmd_params, "missing": cmd_missing, "missing-ou": cmd_missing_ou}[a.cmd](a)


if __name__ == "__main__":
    main()
