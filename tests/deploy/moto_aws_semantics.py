"""moto_server with two documented AWS behaviours it lacks, which the deployment tests rely on.

Run exactly like moto_server (same arguments). Everything else is moto as installed.

1. A stack instance's ParameterOverrides override the StackSet's values for those keys only
   (CreateStackInstances, AWS docs); moto 5.2.5 replaces the whole parameter list with them, so a
   per-region ArtifactVersion override would lose every other parameter.
2. AWS::Lambda::Function Code.S3ObjectVersion selects that version of the object; moto 5.2.5
   ignores it and reads whatever is current at the key, which would hide the version pin.

Both patches only make moto do what AWS does; neither makes a check pass by itself: a test that
relies on them also shows the failure when the pin is missing.
"""

from __future__ import annotations

import sys

from moto.awslambda import models as lambda_models
from moto.cloudformation import models as cfn_models
from moto.s3.models import s3_backends


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

if __name__ == "__main__":
    from moto.server import main

    main(sys.argv[1:])
