"""The request handlers behind both front ends (gRPC and REST).

Each method takes and returns the `tensorflow_serving.apis` messages and raises
`ServingError` with TF Serving's code and text; the front ends only translate.
"""

from __future__ import annotations

from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, inference_pb2,
                                     model_management_pb2, model_pb2, regression_pb2)

from serving import limits, status, tensors
from serving.manager import ModelManager
from serving.servable import (CLASSIFY_METHOD, DEFAULT_SIGNATURE, REGRESS_METHOD,
                              check_classify_or_regress, predict_response)
from serving.status import ServingError

SIGNATURE_DEF_FIELD = "signature_def"


def _has_input(request) -> bool:
    choice = request.input.WhichOneof("kind")
    if choice == "example_list":
        return len(request.input.example_list.examples) > 0
    if choice == "example_list_with_context":
        return len(request.input.example_list_with_context.examples) > 0
    return False


class ServingCore:
    """Predict, metadata, status, classify/regress and config reloads over a ModelManager.

    Args:
        manager: The loaded models.
        max_request_output_mb: Per-request output budget (`serving.limits`); 0: none.
    """

    def __init__(self, manager: ModelManager,
                 max_request_output_mb: int = limits.DEFAULT_MAX_REQUEST_OUTPUT_MB):
        self.manager = manager
        self.max_request_output_mb = max_request_output_mb

    def _prepare(self, handle, signature_name, inputs, output_filter, parse):
        prepared = handle.servable.prepare_predict(signature_name, inputs, output_filter, parse=parse)
        limits.check_output_budget(handle.servable.signature_defs[prepared.signature_name],
                                   prepared, self.max_request_output_mb)
        return prepared

    # -- PredictionService -------------------------------------------------------

    def predict(self, request, timeout_ms: int = 0):
        """Predict (predict_impl.cc + predict_util.cc)."""
        if not request.HasField("model_spec"):
            raise status.invalid_argument("Missing ModelSpec")
        with self.manager.acquire(request.model_spec) as handle:
            prepared = self._prepare(handle, request.model_spec.signature_name, request.inputs,
                                     request.output_filter, tensors.from_proto)
            outputs = handle.runner.run(prepared, timeout_ms)
            return predict_response(request.model_spec.name, handle.version, prepared, outputs)

    def predict_arrays(self, model_spec, inputs: dict, timeout_ms: int = 0):
        """Predict on arrays already parsed (the REST path). Returns (prepared, outputs)."""
        with self.manager.acquire(model_spec) as handle:
            prepared = self._prepare(handle, model_spec.signature_name, inputs, [],
                                     lambda array: array)
            return prepared, handle.runner.run(prepared, timeout_ms)

    def input_infos(self, model_spec, signature_name: str) -> dict:
        """HttpRestApiHandler::GetInfoMap: the signature's inputs, alias -> TensorInfo."""
        with self.manager.acquire(model_spec) as handle:
            name = signature_name or DEFAULT_SIGNATURE
            signatures = handle.servable.signature_defs
            if name not in signatures:
                raise status.invalid_argument(
                    f'Serving signature name: "{name}" not found in signature def')
            return dict(signatures[name].inputs)

    def get_model_metadata(self, request):
        """GetModelMetadata (get_model_metadata_impl.cc): the SignatureDefMap, packed in Any."""
        if not request.HasField("model_spec"):
            raise status.invalid_argument("Missing ModelSpec")
        if not request.metadata_field:
            raise status.invalid_argument(
                "GetModelMetadataRequest must specify at least one metadata_field")
        for field in request.metadata_field:
            if field != SIGNATURE_DEF_FIELD:
                raise status.invalid_argument(f"Metadata field {field} is not supported")
        with self.manager.acquire(request.model_spec) as handle:
            signature_map = get_model_metadata_pb2.SignatureDefMap()
            for name, signature in handle.servable.signature_defs.items():
                signature_map.signature_def[name].CopyFrom(signature)
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = request.model_spec.name
            response.model_spec.version.value = handle.version
            response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_map)
            return response

    def classify(self, request):
        return self._classify_or_regress(request, CLASSIFY_METHOD)

    def regress(self, request):
        return self._classify_or_regress(request, REGRESS_METHOD)

    def _classify_or_regress(self, request, method: str):
        if not request.HasField("model_spec"):
            raise status.invalid_argument("Missing ModelSpec")
        with self.manager.acquire(request.model_spec) as handle:
            check_classify_or_regress(handle.servable, request.model_spec.signature_name,
                                      method, _has_input(request))
        # check_classify_or_regress always raises; keep the type checker honest.
        response_type = (classification_pb2.ClassificationResponse if method == CLASSIFY_METHOD
                         else regression_pb2.RegressionResponse)
        return response_type()

    def multi_inference(self, request):
        """MultiInference (multi_inference.cc): classify/regress tasks only."""
        spec = request.tasks[0].model_spec if request.tasks else model_pb2.ModelSpec()
        with self.manager.acquire(spec) as handle:
            model_name, signature_names = "", set()
            for task in request.tasks:
                if not task.model_spec.name:
                    raise status.invalid_argument("Found ModelSpec with an empty model name.")
                if not model_name:
                    model_name = task.model_spec.name
                elif model_name != task.model_spec.name:
                    raise status.invalid_argument(
                        "All ModelSpecs in a MultiInferenceRequest must access the same model name.")
                name = task.model_spec.signature_name or DEFAULT_SIGNATURE
                if name in signature_names:
                    raise status.invalid_argument(f"Duplicate evaluation of signature: {name}")
                signature_names.add(name)
                signatures = handle.servable.signature_defs
                if name not in signatures:
                    raise status.invalid_argument(
                        f"Requested signature not found in model graph: {name}")
                if task.method_name not in (CLASSIFY_METHOD, REGRESS_METHOD):
                    raise ServingError(status.UNIMPLEMENTED,
                                       f"Unsupported signature method_name: {task.method_name}")
                kind = "classification" if task.method_name == CLASSIFY_METHOD else "regression"
                if signatures[name].method_name != task.method_name:
                    raise status.invalid_argument(
                        f"Expected {kind} signature method_name to be {task.method_name}. "
                        f"Was: {signatures[name].method_name}")
            if not _has_input(request):
                raise status.invalid_argument("Input is empty.")
            raise ServingError(status.UNIMPLEMENTED,
                               "This server runs predict signatures only.")
        return inference_pb2.MultiInferenceResponse()

    # -- ModelService -------------------------------------------------------------

    def get_model_status(self, request):
        if not request.HasField("model_spec"):
            raise status.invalid_argument("Missing ModelSpec")
        return self.manager.model_status(request.model_spec)

    def reload_config(self, request):
        """HandleReloadConfigRequest: (response with the status, error or None)."""
        response = model_management_pb2.ReloadConfigResponse()
        error = None
        if request.config.WhichOneof("config") != "model_config_list":
            error = status.invalid_argument(
                "ServerModelConfig type not supported by HandleReloadConfigRequest. Only "
                "ModelConfigList is currently supported")
        else:
            try:
                self.manager.reload_config(request.config)
            except ServingError as failure:
                error = failure
        response.status.CopyFrom(error.to_status_proto() if error else status.ok_status_proto())
        return response, error
