"""moto_server with documented AWS behaviours it lacks, which the deployment tests rely on.

Run exactly like moto_server (same arguments). Everything else is moto as installed.

1. A stack instance's ParameterOverrides override the StackSet's values for those keys only
   (CreateStackInstances, AWS docs); moto 5.2.5 replaces the whole parameter list with them, so a
   per-region ArtifactVersion override would lose every other parameter.
2. AWS::Lambda::Function Code.S3ObjectVersion selects that version of the object; moto 5.2.5
   ignores it and reads whatever is current at the key, which would hide the version pin.

3. AWS::Lambda::Url and AWS::SecretsManager::Secret in a template: moto 5.2.5 has function URL
   configs and secrets in its Lambda and Secrets Manager backends, but its CloudFormation knows
   neither type, so a stack whose outputs name them fails with a 500. Each is created through
   its backend as CloudFormation creates it (the URL's FunctionUrl attribute; the secret's Ref is
   its ARN, created without a value unless SecretString or GenerateSecretString gives one).

The first two only make moto do what AWS does; neither makes a check pass by itself: a test that
relies on them also shows the failure when the pin is missing.
"""

from __future__ import annotations

import sys

import json
from typing import Any

from moto.awslambda import models as lambda_models
from moto.cloudformation import models as cfn_models
from moto.core.common_models import CloudFormationModel
from moto.s3.models import s3_backends
from moto.secretsmanager.models import secretsmanager_backends


def _merged(base, overrides):
    if isinstance(base, dict):
        merged = dict(base)
    else:
        merged = {p["ParameterKey"]: p.get("ParameterValue", "") for p in (base or [])}
    for p in overrides or []:
        merged[p["ParameterKey"]] = p.get("ParameterValue", "")
    return [{"ParameterKey": k, "ParameterValue": v} for k, v in merged.items()]


_create = cfn_models.StackSet.create_stack_instances


def create_stack_instances(self, accounts, regions, deployment_targets, parameters):
    return _create(self, accounts, regions, deployment_targets, _merged(self.parameters, parameters))


cfn_models.StackSet.create_stack_instances = create_stack_instances

_validate = lambda_models._validate_s3_bucket_and_key


def _validate_s3_bucket_and_key(account_id, partition, data):
    version = data.get("S3ObjectVersion")
    if not version:
        return _validate(account_id, partition, data)
    key = s3_backends[account_id][partition].get_object(data["S3Bucket"], data["S3Key"], version_id=version)
    if key is None:
        raise ValueError("InvalidParameterValueException",
                         "Error occurred while GetObject. S3 Error Code: NoSuchVersion. "
                         "S3 Error Message: The specified version does not exist.")
    return key


lambda_models._validate_s3_bucket_and_key = _validate_s3_bucket_and_key



class FunctionUrl(CloudFormationModel):
    """AWS::Lambda::Url through moto's Lambda backend (CreateFunctionUrlConfig)."""

    # moto files each model under the service its module names.
    __module__ = "moto.awslambda.cfn_url"

    def __init__(self, config):
        self.config = config

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Lambda::Url"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in ("FunctionArn", "FunctionUrl")

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name,
                                        **kwargs: Any):
        props = cloudformation_json["Properties"]
        backend = lambda_models.lambda_backends[account_id][region_name]
        config = {k: props[k] for k in ("AuthType", "Cors", "InvokeMode") if k in props}
        return cls(backend.create_function_url_config(props["TargetFunctionArn"], config))

    @classmethod
    def update_from_cloudformation_json(cls, original_resource, new_resource_name, cloudformation_json,
                                        account_id, region_name):
        original_resource.config.update(cloudformation_json["Properties"])
        return original_resource

    @classmethod
    def delete_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name):
        pass

    @property
    def physical_resource_id(self) -> str:
        return self.config.function.function_arn

    def get_cfn_attribute(self, attribute_name: str) -> str:
        return self.config.to_dict()[attribute_name]


class Secret(CloudFormationModel):
    """AWS::SecretsManager::Secret through moto's Secrets Manager backend (CreateSecret)."""

    __module__ = "moto.secretsmanager.cfn_secret"

    def __init__(self, arn: str):
        self.arn = arn

    @staticmethod
    def cloudformation_name_type() -> str:
        return "Name"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::SecretsManager::Secret"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "Id"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name,
                                        **kwargs: Any):
        props = cloudformation_json.get("Properties", {})
        backend = secretsmanager_backends[account_id][region_name]
        value = props.get("SecretString")
        gen = props.get("GenerateSecretString")
        if gen is not None:
            value = json.loads(backend.get_random_password(
                password_length=int(gen.get("PasswordLength", 32)),
                exclude_characters=gen.get("ExcludeCharacters", ""),
                exclude_numbers=bool(gen.get("ExcludeNumbers", False)),
                exclude_punctuation=bool(gen.get("ExcludePunctuation", False)),
                exclude_uppercase=bool(gen.get("ExcludeUppercase", False)),
                exclude_lowercase=bool(gen.get("ExcludeLowercase", False)),
                include_space=bool(gen.get("IncludeSpace", False)),
                require_each_included_type=bool(gen.get("RequireEachIncludedType", True)),
            ))["RandomPassword"]
        out = backend.create_secret(
            name=props.get("Name") or resource_name, secret_string=value, secret_binary=None,
            description=props.get("Description"), tags=props.get("Tags"), kms_key_id=props.get("KmsKeyId"),
            client_request_token=None, replica_regions=[], force_overwrite=False,
        )
        return cls(json.loads(out)["ARN"])

    @classmethod
    def update_from_cloudformation_json(cls, original_resource, new_resource_name, cloudformation_json,
                                        account_id, region_name):
        return original_resource

    @classmethod
    def delete_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name):
        pass

    @property
    def physical_resource_id(self) -> str:
        return self.arn

    def get_cfn_attribute(self, attribute_name: str) -> str:
        return self.arn


if __name__ == "__main__":
    from moto.server import main

    main(sys.argv[1:])
