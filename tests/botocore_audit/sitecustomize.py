"""Audit every botocore API call of a process (and its children) against the service model.

Put this folder first on PYTHONPATH and set BOTOCORE_AUDIT_FILE: each call made through any
boto3/botocore client is validated with `botocore.validate.validate_parameters` against the
real service model's input shape, recorded as one JSON line, then sent on unchanged. It
observes; it never answers for the service. Papermill kernels inherit the environment, so
notebook code is audited too.
"""

import json
import os

_AUDIT_FILE = os.environ.get("BOTOCORE_AUDIT_FILE")

if _AUDIT_FILE:
    from botocore.client import BaseClient
    from botocore.exceptions import ParamValidationError
    from botocore.validate import validate_parameters

    _send = BaseClient._make_api_call

    def _audited_call(self, operation_name, api_params):
        model = self.meta.service_model.operation_model(operation_name)
        try:
            validate_parameters(api_params, model.input_shape)
            problem = None
        except ParamValidationError as error:
            problem = str(error)
        with open(_AUDIT_FILE, "a", encoding="utf-8") as audit:
            audit.write(json.dumps({
                "service": self.meta.service_model.service_name,
                "operation": operation_name,
                "invalid": problem,
                "pid": os.getpid(),
            }) + "\n")
        return _send(self, operation_name, api_params)

    BaseClient._make_api_call = _audited_call
