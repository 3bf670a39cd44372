"""Audit every botocore API call of a process (and its children) against the service model.

Put this folder first on PYTHONPATH and set BOTOCORE_AUDIT_FILE: each call made through any
boto3/botocore client is checked with `diversity_monitor.aws.service_schema.request_problem` (the
service model's shape, plus the maximums, enums and patterns boto3 leaves to the service),
recorded as one JSON line with its scalar parameters (bucket, prefix, names: what a test asserts
on; bodies are left out), then sent on unchanged. It observes; it never answers for the service.
Papermill kernels inherit the environment, so notebook code is audited too.
"""

import json
import os

_AUDIT_FILE = os.environ.get("BOTOCORE_AUDIT_FILE")
_MAX_SHOWN = 500

if _AUDIT_FILE:
    from botocore.client import BaseClient

    from diversity_monitor.aws.service_schema import request_problem

    _send = BaseClient._make_api_call

    def _scalars(params: dict) -> dict:
        return {name: value[:_MAX_SHOWN] if isinstance(value, str) else value
                for name, value in params.items() if isinstance(value, (str, int, float, bool))}

    def _audited_call(self, operation_name, api_params):
        model = self.meta.service_model.operation_model(operation_name)
        with open(_AUDIT_FILE, "a", encoding="utf-8") as audit:
            audit.write(json.dumps({
                "service": self.meta.service_model.service_name,
                "operation": operation_name,
                "invalid": request_problem(api_params, model),
                "params": _scalars(api_params),
                "pid": os.getpid(),
            }) + "\n")
        return _send(self, operation_name, api_params)

    BaseClient._make_api_call = _audited_call
