"""Renders the IAM policies a CloudFormation template would create, for given parameter values,
so they can be linted (parliament), tested and simulated (scripts/check-iam) without deploying.

It resolves the intrinsic functions the templates use in policies (Ref, Fn::Sub, Fn::If,
Fn::Select, Fn::Split, Fn::Join, Fn::GetAtt as a placeholder ARN, and the condition functions)
and refuses anything else by name, so a template change it cannot follow fails loudly instead of
rendering something false. stdlib + PyYAML only.

    python3 cfn_render.py TEMPLATE [--param K=V ...] [--account ID] [--region R] [--role Role]
prints {"<PolicyName>": <policy document>, ...} for every policy attached to the role.
Exit status: 0 ok, 2 bad input (the message names it).
"""

from __future__ import annotations

import argparse
import json
import re
import sys

import yaml


class _CfnLoader(yaml.SafeLoader):
    pass


def _tag(loader, suffix, node):
    name = {"Ref": "Ref", "Condition": "Condition"}.get(suffix, "Fn::" + suffix)
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if name == "Fn::GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _tag)

NO_VALUE = object()


class RenderError(Exception):
    pass


def load(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


class Renderer:
    def __init__(self, template: dict, params: dict[str, str], account: str, region: str, partition: str = "aws"):
        self.t = template
        declared = template.get("Parameters", {}) or {}
        unknown = sorted(set(params) - set(declared))
        if unknown:
            raise RenderError(f"unknown parameter(s) {', '.join(unknown)}; the template takes {', '.join(sorted(declared))}")
        self.params: dict[str, object] = {}
        for name, spec in declared.items():
            if name in params:
                value = params[name]
            elif "Default" in spec:
                value = str(spec["Default"])
            else:
                value = f"<{name}>"  # a required value the caller did not give: visible in the output
            if spec.get("Type") == "CommaDelimitedList":
                self.params[name] = [] if value == "" else value.split(",")
            else:
                self.params[name] = value
        self.pseudo = {"AWS::AccountId": account, "AWS::Region": region, "AWS::Partition": partition,
                       "AWS::StackName": "StackSet-ec2-reaper", "AWS::URLSuffix": "amazonaws.com",
                       "AWS::StackId": (f"arn:{partition}:cloudformation:{region}:{account}:stack/"
                                        "StackSet-ec2-reaper/00000000-0000-0000-0000-000000000000")}
        self._conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            conds = self.t.get("Conditions", {}) or {}
            if name not in conds:
                raise RenderError(f"unknown condition {name}")
            self._conditions[name] = bool(self.value(conds[name]))
        return self._conditions[name]

    def ref(self, name: str):
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.params:
            return self.params[name]
        resources = self.t.get("Resources", {}) or {}
        if name in resources and resources[name].get("Type") == "AWS::SecretsManager::Secret":
            # A secret's Ref is its ARN (the six-character suffix is Secrets Manager's).
            return (f"arn:{self.pseudo['AWS::Partition']}:secretsmanager:{self.pseudo['AWS::Region']}:"
                    f"{self.pseudo['AWS::AccountId']}:secret:{name}-AbCdEf")
        if name in resources:
            return f"<{name}>"  # a resource's physical id: only known after deployment
        raise RenderError(f"Ref to unknown name {name}")

    def sub(self, text: str, extra: dict) -> str:
        def repl(m):
            var = m.group(1)
            if var.startswith("!"):
                return "${" + var[1:] + "}"
            if var in extra:
                return str(extra[var])
            if "." in var:
                res, attr = var.split(".", 1)
                return self.getatt(res, attr)
            v = self.ref(var)
            if isinstance(v, list):
                raise RenderError(f"Fn::Sub of list parameter {var}")
            return str(v)

        return re.sub(r"\$\{([^}]+)\}", repl, text)

    def getatt(self, res: str, attr: str) -> str:
        resources = self.t.get("Resources", {}) or {}
        if res not in resources:
            raise RenderError(f"Fn::GetAtt of unknown resource {res}")
        if attr == "Arn" and resources[res]["Type"] == "AWS::IAM::Role":
            return f"arn:{self.pseudo['AWS::Partition']}:iam::{self.pseudo['AWS::AccountId']}:role/StackSet-{res}"
        if attr == "Arn" and resources[res]["Type"] == "AWS::S3::Bucket":
            return f"arn:{self.pseudo['AWS::Partition']}:s3:::{res.lower()}"
        if attr == "Arn" and resources[res]["Type"] == "AWS::Logs::LogGroup":
            return (f"arn:{self.pseudo['AWS::Partition']}:logs:{self.pseudo['AWS::Region']}:"
                    f"{self.pseudo['AWS::AccountId']}:log-group:/{res.lower()}:*")
        return f"<{res}.{attr}>"

    def value(self, node):
        if isinstance(node, list):
            out = [self.value(x) for x in node]
            return [x for x in out if x is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (k, v), = node.items()
            if k == "Ref":
                return self.ref(v)
            if k == "Condition":
                return self.condition(v)
            if k == "Fn::If":
                name, yes, no = v
                return self.value(yes if self.condition(name) else no)
            if k == "Fn::Equals":
                a, b = (self.value(x) for x in v)
                return str(a) == str(b)
            if k == "Fn::Not":
                return not self.value(v[0])
            if k == "Fn::And":
                return all(self.value(x) for x in v)
            if k == "Fn::Or":
                return any(self.value(x) for x in v)
            if k == "Fn::Sub":
                if isinstance(v, list):
                    text, extra = v
                    return self.sub(text, {n: self.value(x) for n, x in extra.items()})
                return self.sub(v, {})
            if k == "Fn::Join":
                sep, items = v
                items = self.value(items)
                return sep.join(str(x) for x in items)
            if k == "Fn::Split":
                sep, text = v
                return str(self.value(text)).split(sep)
            if k == "Fn::Select":
                idx, items = v
                items = self.value(items)
                i = int(self.value(idx))
                if i >= len(items):
                    raise RenderError(f"Fn::Select index {i} out of range for {items}")
                return items[i]
            if k == "Fn::GetAtt":
                return self.getatt(*v)
            if k.startswith("Fn::"):
                raise RenderError(f"{k} is not supported by cfn_render.py; extend it before using it in a policy")
        out = {}
        for k, v in node.items():
            r = self.value(v)
            if r is not NO_VALUE:
                out[k] = r
        return out

    def role_policies(self, role: str) -> dict[str, dict]:
        resources = self.t.get("Resources", {}) or {}
        if role not in resources:
            raise RenderError(f"no resource {role} in the template")
        out: dict[str, dict] = {}
        for p in resources[role]["Properties"].get("Policies", []):
            out[p["PolicyName"]] = self.value(p["PolicyDocument"])
        for name, r in resources.items():
            if r.get("Type") != "AWS::IAM::Policy":
                continue
            if "Condition" in r and not self.condition(r["Condition"]):
                continue
            roles = r["Properties"].get("Roles", [])
            if {"Ref": role} in roles:
                out[r["Properties"]["PolicyName"]] = self.value(r["Properties"]["PolicyDocument"])
        return out


def render_role(template_path: str, params: dict[str, str], role: str = "Role",
                account: str = "123456789012", region: str = "eu-west-1") -> dict[str, dict]:
    return Renderer(load(template_path), params, account, region).role_policies(role)


def merged(policies: dict[str, dict]) -> dict:
    """All statements of all policies in one document (what parliament and simulate take)."""
    return {"Version": "2012-10-17", "Statement": [s for doc in policies.values() for s in doc["Statement"]]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("template")
    p.add_argument("--param", action="append", default=[], help="Key=Value, repeatable")
    p.add_argument("--account", default="123456789012")
    p.add_argument("--region", default="eu-west-1")
    p.add_argument("--role", default="Role")
    p.add_argument("--merged", action="store_true", help="one document with every statement")
    a = p.parse_args()
    params = {}
    for kv in a.param:
        if "=" not in kv:
            print(f"error: --param {kv!r}: expected Key=Value", file=sys.stderr)
            sys.exit(2)
        k, v = kv.split("=", 1)
        params[k] = v
    try:
        pols = render_role(a.template, params, a.role, a.account, a.region)
    except RenderError as e:
        print(f"error: {a.template}: {e}", file=sys.stderr)
        sys.exit(2)
    json.dump(merged(pols) if a.merged else pols, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
