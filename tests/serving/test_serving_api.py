"""`python -m serving.server` against TF Serving's contract, through the stock stubs and HTTP.

One server (a subprocess on 127.0.0.1) serves five models from a text
ModelServerConfig: `gan` (a tiny generator from `export_generator`), `shapes`
(a tiny 3D-GAN from `export_model`: four signatures, warm-up records, model
card), `toy` (versions 1 and 2 with labels), `live` (versions are added and
corrupted while it serves) and `doomed` (removed by a config reload).
"""

from __future__ import annotations

import json
import shutil
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import json_format, text_format
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2,
                                     get_model_status_pb2, inference_pb2, model_management_pb2,
                                     predict_pb2, prediction_log_pb2, regression_pb2)
from tensorflow_serving.config import model_server_config_pb2

from serving import client as client_lib
from serving_harness import (ServerProcess, export_toy, output, predict_request, write_config)
from tf3dgan import config as config_lib
from tf3dgan import priors, signatures
from tf3dgan.export import export_generator, export_model, model_card
from tf3dgan.models import Generator
from tf3dgan.models.gan import build_gan

State = get_model_status_pb2.ModelVersionStatus.State


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("serving_api")
    generator = Generator(resolution=16, latent_dim=8, base_filters=4)
    generator.build()
    export_generator(generator, root / "gan", 1)
    smoke = config_lib.SMOKE
    gan = build_gan(smoke.model, smoke.train)
    shapes_path = export_model(gan, root / "shapes", 1, model_card=model_card(
        smoke, steps_trained=0, data_description="untrained, for tests"))
    export_toy(root / "toy" / "1", 1.0)
    export_toy(root / "toy" / "2", 2.0)
    export_toy(root / "live" / "1", 1.0)
    export_toy(root / "doomed" / "1", 1.0)
    models = [
        {"name": "gan", "base_path": root / "gan"},
        {"name": "shapes", "base_path": root / "shapes"},
        {"name": "toy", "base_path": root / "toy",
         "extra": "    model_version_policy { specific { versions: 1 versions: 2 } }\n"
                  "    version_labels { key: 'stable' value: 1 }\n"
                  "    version_labels { key: 'canary' value: 2 }\n"},
        {"name": "live", "base_path": root / "live"},
        {"name": "doomed", "base_path": root / "doomed"},
    ]
    config = write_config(root / "models.config", models)
    server = ServerProcess([f"--model_config_file={config}"], root / "server.log")
    try:
        for model in models:
            server.wait_until_available(model["name"])
        yield {"server": server, "generator": generator, "gan": gan, "root": root, "models": models,
               "shapes": tf.saved_model.load(str(shapes_path))}
    finally:
        server.kill()


@pytest.fixture
def server(setup):
    return setup["server"]


def rpc_error(call, request):
    with pytest.raises(grpc.RpcError) as raised:
        call(request, timeout=30)
    return raised.value.code(), raised.value.details()


def assert_still_serving(server):
    response = server.predictions.Predict(predict_request("toy", {"x": [[1.0, 2.0, 3.0]]}), timeout=30)
    np.testing.assert_allclose(output(response, "y"), [[2.0, 4.0, 6.0]])  # latest = version 2


# -- Predict ---------------------------------------------------------------------

def test_predict_equals_the_in_process_generator(setup, server):
    z = np.random.default_rng(0).random((3, 8)).astype(np.float32)
    response = server.predictions.Predict(predict_request("gan", {"z": z}), timeout=30)
    expected = np.asarray(setup["generator"](z, training=False))
    voxels = response.outputs["voxels"]
    # Typed fields as TF Serving's default (kAsProtoField), not tensor_content.
    assert voxels.tensor_content == b"" and len(voxels.float_val) == 3 * 16 ** 3
    np.testing.assert_allclose(output(response, "voxels"), expected, rtol=0, atol=1e-5)
    assert response.model_spec.name == "gan"
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "serving_default"


def test_predict_over_grpc_default_message_limit(server):
    x = np.ones((400_000, 3), np.float32)  # 4.8 MB each way, over gRPC's 4 MiB default
    response = server.predictions.Predict(predict_request("toy", {"x": x}, version=1), timeout=60)
    assert output(response, "y").shape == (400_000, 3)


def test_versions_labels_and_output_filter(server):
    def y(**spec):
        response = server.predictions.Predict(predict_request("toy", {"x": [[1.0, 1.0, 1.0]]}, **spec),
                                              timeout=30)
        return float(output(response, "y")[0, 0]), response.model_spec.version.value

    assert y() == (2.0, 2)  # latest
    assert y(version=1) == (1.0, 1)
    assert y(label="stable") == (1.0, 1)
    assert y(label="canary") == (2.0, 2)
    response = server.predictions.Predict(predict_request(
        "toy", {"a": [[1.0, 2.0]], "b": [3]}, signature="pair", output_filter=["b_squared"]), timeout=30)
    assert list(response.outputs) == ["b_squared"] and output(response, "b_squared").tolist() == [9]


def test_metadata_lists_every_signature(server):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "toy"
    response = server.predictions.GetModelMetadata(request, timeout=30)
    assert response.model_spec.name == "toy" and response.model_spec.version.value == 2
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signatures)
    assert set(signatures.signature_def) == {"serving_default", "pair", "text", "__saved_model_init_op"}
    pair = signatures.signature_def["pair"]
    assert pair.method_name == "tensorflow/serving/predict"
    assert pair.inputs["b"].dtype == tf.int64.as_datatype_enum
    assert [d.size for d in pair.inputs["a"].tensor_shape.dim] == [-1, 2]
    assert set(pair.outputs) == {"total", "b_squared"}

    code, body = server.http("GET", "/v1/models/gan/metadata")
    assert code == 200
    assert body["model_spec"] == {"name": "gan", "signature_name": "", "version": "1"}
    default = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert default["inputs"]["z"]["dtype"] == "DT_FLOAT"
    dims = default["outputs"]["voxels"]["tensor_shape"]["dim"]
    assert [dim["size"] for dim in dims] == ["-1", "16", "16", "16"]


def test_model_status_grpc_and_rest(server):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "toy"
    response = server.models.GetModelStatus(request, timeout=30)
    assert [(s.version, s.state, s.status.error_code) for s in response.model_version_status] == [
        (2, State.AVAILABLE, 0), (1, State.AVAILABLE, 0)]
    code, body = server.http("GET", "/v1/models/toy/versions/1")
    assert code == 200 and body == {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
    code, body = server.http("GET", "/v1/models/toy/labels/canary")
    assert code == 200 and body["model_version_status"][0]["version"] == "2"
    assert server.http("GET", "/V1/Models/toy/Versions/1")[0] == 200  # TF Serving's (?i) paths


# -- REST predict -------------------------------------------------------------------

def test_rest_row_and_columnar_formats(setup, server):
    z = np.random.default_rng(1).random((2, 8)).astype(np.float32)
    expected = np.asarray(setup["generator"](z, training=False))
    code, body = server.http("POST", "/v1/models/gan:predict", {"instances": z.tolist()})
    assert code == 200 and list(body) == ["predictions"]
    np.testing.assert_allclose(np.asarray(body["predictions"]), expected, atol=1e-5)
    code, body = server.http("POST", "/v1/models/gan/versions/1:predict", {"inputs": {"z": z.tolist()}})
    assert code == 200
    np.testing.assert_allclose(np.asarray(body["outputs"]), expected, atol=1e-5)

    rows = {"signature_name": "pair", "instances": [{"a": [1.0, 2.0], "b": 3}, {"a": [0.5, 0.5], "b": -1}]}
    code, body = server.http("POST", "/v1/models/toy/labels/stable:predict", rows)
    assert code == 200 and body == {"predictions": [{"b_squared": 9, "total": 6.0},
                                                    {"b_squared": 1, "total": 0.0}]}
    columns = {"signature_name": "text", "inputs": {"text": ["ab", {"b64": "AAEC"}]}}
    code, body = server.http("POST", "/v1/models/toy:predict", columns)
    assert code == 200 and body == {"outputs": {"echo_bytes": [{"b64": "YWI="}, {"b64": "AAEC"}],
                                                "length": [2, 3]}}
    code, body = server.http("POST", "/v1/models/toy:predict", b'{"inputs": [[NaN, Infinity, 0.1]]}')
    assert code == 200 and str(body["outputs"][0][:2]) == "[nan, inf]" and body["outputs"][0][2] == 0.2


# -- the signatures of tf3dgan.export.export_model, served as they are ------------------

def test_exported_signatures(setup, server):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "shapes"
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    server.predictions.GetModelMetadata(request, timeout=30).metadata["signature_def"].Unpack(signature_map)
    assert set(signature_map.signature_def) == set(signatures.SIGNATURE_NAMES) | {"__saved_model_init_op"}

    seeds = np.array([3, -1, 12], np.int64)
    response = server.predictions.Predict(predict_request("shapes", {"seed": seeds}, signature="sample"),
                                          timeout=30)
    z = priors.sample_latent_per_seed("uniform", seeds, 8).numpy()
    np.testing.assert_allclose(output(response, "z"), z, rtol=0, atol=1e-7)
    np.testing.assert_allclose(output(response, "voxels"), setup["gan"].generator(z, training=False),
                               rtol=0, atol=1e-5)
    response = server.predictions.Predict(predict_request(
        "shapes", {"z": z, "threshold": np.float32(0.5)}, signature="occupancy"), timeout=30)
    packed = response.outputs["occupancy"]
    assert packed.dtype == tf.uint8.as_datatype_enum and len(packed.int_val) == 3 * 16 * 16 * 2
    expected = setup["shapes"].signatures["occupancy"](z=tf.constant(z), threshold=tf.constant(0.5))
    np.testing.assert_array_equal(output(response, "occupancy"), expected["occupancy"].numpy())
    assert output(response, "occupied_count").tolist() == expected["occupied_count"].numpy().tolist()
    voxels = np.random.default_rng(2).random((2, 16, 16, 16)).astype(np.float32)
    response = server.predictions.Predict(predict_request(
        "shapes", {"voxels": voxels}, signature="discriminator_features"), timeout=30)
    expected = setup["shapes"].signatures["discriminator_features"](voxels=tf.constant(voxels))
    for name in ("features", "logits"):
        np.testing.assert_allclose(output(response, name), expected[name].numpy(), rtol=1e-5, atol=1e-5)
    # Over REST, a scalar threshold goes in the columnar format.
    code, body = server.http("POST", "/v1/models/shapes:predict", {
        "signature_name": "occupancy", "inputs": {"z": z[:1].tolist(), "threshold": 0.5}})
    assert code == 200 and np.asarray(body["outputs"]["occupancy"]).shape == (1, 16, 16, 2)


def test_client_command_line(setup, server, tmp_path, capsys):
    target = f"127.0.0.1:{server.grpc_port}"
    arguments = ["--server", target, "--model_name", "shapes"]
    assert client_lib.main(arguments + ["sample", "--num_samples", "3", "--seed", "5",
                                        "--image_size", "32", "--output_dir", str(tmp_path)]) == 0
    z = priors.sample_latent_per_seed("uniform", np.arange(5, 8), 8).numpy()
    np.testing.assert_allclose(np.load(tmp_path / "z.npy"), z, atol=1e-7)
    voxels = np.load(tmp_path / "voxels.npy")
    np.testing.assert_allclose(voxels, setup["gan"].generator(z, training=False), atol=1e-5)
    assert (tmp_path / "samples.png").stat().st_size > 0
    assert client_lib.main(arguments + ["features", "--voxels", str(tmp_path / "voxels.npy"),
                                        "--output_dir", str(tmp_path / "features")]) == 0
    assert np.load(tmp_path / "features" / "logits.npy").shape == (3, 1)
    capsys.readouterr()
    assert client_lib.main(arguments + ["metadata"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert sorted(described) == sorted(signatures.SIGNATURE_NAMES)
    assert described["sample"]["inputs"] == {"seed": {"dtype": "int64", "shape": [-1]}}
    # A model without a `sample` signature: z is drawn here, from the same prior.
    with client_lib.ServingClient(target, "gan") as client:
        drawn = client.sample(2, seed=5)
    np.testing.assert_allclose(drawn["voxels"], setup["generator"](z[:2], training=False), atol=1e-5)
    # Errors come back as the server's status, and a non-zero exit.
    assert client_lib.main(["--server", target, "--model_name", "nope", "metadata"]) == 1
    assert "NOT_FOUND: Servable not found for request: Latest(nope)" in capsys.readouterr().err
    assert client_lib.main(["--server", target, "--model_name", "gan", "features", "--voxels",
                            str(tmp_path / "voxels.npy"), "--output_dir", str(tmp_path)]) == 1
    assert "has no 'discriminator_features' signature" in capsys.readouterr().err


# -- errors, each as TF Serving words it, and the server still answering ---------------

GRPC_PREDICT_ERRORS = [
    ("unknown model", predict_request("nope", {"z": [[0.0] * 8]}),
     grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(nope)"),
    ("unknown version", predict_request("gan", {"z": [[0.0] * 8]}, version=7),
     grpc.StatusCode.NOT_FOUND, "Servable not found for request: Specific(gan, 7)"),
    ("unknown label", predict_request("toy", {"x": [[0.0] * 3]}, label="beta"),
     grpc.StatusCode.INVALID_ARGUMENT, "Unrecognized servable version label: beta"),
    ("no model spec", predict_pb2.PredictRequest(),
     grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec"),
    ("empty name", predict_request("", {"z": [[0.0] * 8]}),
     grpc.StatusCode.INVALID_ARGUMENT, "ModelSpec has no name specified."),
    ("missing signature", predict_request("gan", {"z": [[0.0] * 8]}, signature="sample"),
     grpc.StatusCode.FAILED_PRECONDITION, 'Serving signature key "sample" not found.'),
    ("wrong input name", predict_request("gan", {"x": [[0.0] * 8]}),
     grpc.StatusCode.INVALID_ARGUMENT,
     "Signature input alias: z(feed name: serving_default_z:0) not found in request and no default "
     "value provided. Inputs expected to be in the request {x}, or default input alias set: "),
    ("extra input", predict_request("gan", {"z": [[0.0] * 8], "x": [1.0]}),
     grpc.StatusCode.INVALID_ARGUMENT,
     "input size does not match signature: 2!=1 len({x,z}) != len({z}). Sent extra: {x}. "
     "Missing but required: {}."),
    ("missing input", predict_request("toy", {"a": [[0.0, 0.0]]}, signature="pair"),
     grpc.StatusCode.INVALID_ARGUMENT,
     "input size does not match signature: 1!=2 len({a}) != len({a,b}). Sent extra: {}. "
     "Missing but required: {b}."),
    ("wrong dtype", predict_request("gan", {"z": np.zeros((1, 8), np.float64)}),
     grpc.StatusCode.INVALID_ARGUMENT, "Expects arg[0] to be float but double is provided"),
    ("string for int64", predict_request("toy", {"a": [[0.0, 0.0]], "b": np.array([b"1"], object)},
                                         signature="pair"),
     grpc.StatusCode.INVALID_ARGUMENT, "Expects arg[1] to be int64 but string is provided"),
    ("unknown output", predict_request("gan", {"z": [[0.0] * 8]}, output_filter=["mesh"]),
     grpc.StatusCode.INVALID_ARGUMENT,
     "output tensor alias not found in signature: mesh Outputs expected to be in the set {voxels}."),
    ("duplicate output", predict_request("gan", {"z": [[0.0] * 8]}, output_filter=["voxels", "voxels"]),
     grpc.StatusCode.INVALID_ARGUMENT, "duplicate output tensor alias: voxels"),
]


@pytest.mark.parametrize("case, request_, code, message", GRPC_PREDICT_ERRORS,
                         ids=[case[0] for case in GRPC_PREDICT_ERRORS])
def test_predict_errors(server, case, request_, code, message):
    assert rpc_error(server.predictions.Predict, request_) == (code, message)
    assert_still_serving(server)


def test_shape_and_parse_errors(server):
    # A wrong shape is refused before the model runs, naming the signature's shape.
    code, message = rpc_error(server.predictions.Predict,
                              predict_request("gan", {"z": np.zeros((2, 7), np.float32)}))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert message == ("input 'z' has shape [2,7] but signature 'serving_default' expects "
                       "[-1,8] (-1: any size)")
    code, message = rpc_error(server.predictions.Predict, predict_request(
        "toy", {"a": np.zeros((2, 2), np.float32), "b": np.zeros(3, np.int64)}, signature="pair"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert message.startswith("Incompatible shapes: [3] vs. [2]")
    # A TensorProto TensorFlow cannot parse.
    request = predict_request("gan", {"z": np.zeros((1, 8), np.float32)})
    request.inputs["z"].tensor_content = b"\x00" * 5
    assert rpc_error(server.predictions.Predict, request) == (
        grpc.StatusCode.INVALID_ARGUMENT, "tensor parsing error: z")
    request.inputs["z"].tensor_shape.dim[0].size = -5
    assert rpc_error(server.predictions.Predict, request)[1] == "tensor parsing error: z"
    # Garbage bytes where a PredictRequest should be.
    raw = server.channel.unary_unary("/tensorflow.serving.PredictionService/Predict",
                                     request_serializer=lambda data: data,
                                     response_deserializer=lambda data: data)
    with pytest.raises(grpc.RpcError):
        raw(b"\xff\xff\xff\xff garbage", timeout=30)
    assert_still_serving(server)


def test_metadata_status_classify_regress_errors(server):
    metadata = get_model_metadata_pb2.GetModelMetadataRequest
    spec = {"name": "gan"}
    assert rpc_error(server.predictions.GetModelMetadata, metadata(model_spec=spec)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "GetModelMetadataRequest must specify at least one metadata_field")
    assert rpc_error(server.predictions.GetModelMetadata,
                     metadata(model_spec=spec, metadata_field=["graph"])) == (
        grpc.StatusCode.INVALID_ARGUMENT, "Metadata field graph is not supported")
    status_request = get_model_status_pb2.GetModelStatusRequest
    assert rpc_error(server.models.GetModelStatus, status_request(model_spec={"name": "nope"})) == (
        grpc.StatusCode.NOT_FOUND, "Could not find any versions of model nope")
    assert rpc_error(server.models.GetModelStatus,
                     status_request(model_spec={"name": "gan", "version": {"value": 9}})) == (
        grpc.StatusCode.NOT_FOUND, "Could not find version 9 of model gan")
    classify = classification_pb2.ClassificationRequest(model_spec=spec)
    classify.input.example_list.examples.add()
    assert rpc_error(server.predictions.Classify, classify) == (
        grpc.StatusCode.INVALID_ARGUMENT, "Expected classification signature method_name to be "
        "tensorflow/serving/classify. Was: tensorflow/serving/predict")
    regress = regression_pb2.RegressionRequest(model_spec={"name": "gan", "signature_name": "nope"})
    assert rpc_error(server.predictions.Regress, regress) == (
        grpc.StatusCode.INVALID_ARGUMENT, "No signature was found with the name: nope")
    multi = inference_pb2.MultiInferenceRequest()
    multi.tasks.add(model_spec=spec, method_name="tensorflow/serving/predict")
    assert rpc_error(server.predictions.MultiInference, multi) == (
        grpc.StatusCode.UNIMPLEMENTED, "Unsupported signature method_name: tensorflow/serving/predict")
    multi.tasks[0].method_name = "tensorflow/serving/regress"
    assert rpc_error(server.predictions.MultiInference, multi) == (
        grpc.StatusCode.INVALID_ARGUMENT, "Expected regression signature method_name to be "
        "tensorflow/serving/regress. Was: tensorflow/serving/predict")
    assert_still_serving(server)


REST_ERRORS = [
    ("POST", "/v1/models/nope:predict", {"instances": [[0.0] * 8]}, 404,
     "Servable not found for request: Latest(nope)"),
    ("POST", "/v1/models/gan/versions/3:predict", {"instances": [[0.0] * 8]}, 404,
     "Servable not found for request: Specific(gan, 3)"),
    ("POST", "/v1/models/gan:predict", {"signature_name": "sample", "instances": [1]}, 400,
     'Serving signature name: "sample" not found in signature def'),
    ("POST", "/v1/models/gan:predict", b"", 400, "JSON Parse error: The document is empty"),
    ("POST", "/v1/models/gan:predict", b"{bad", 400,
     "JSON Parse error: Missing a name for object member. at offset: 1"),
    ("POST", "/v1/models/gan:predict", {"instances": [1], "inputs": [1]}, 400,
     'JSON Value: {\n    "instances": [\n        1\n    ],\n    "inputs": [\n        1\n    ]\n} '
     "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist "),
    ("POST", "/v1/models/gan:predict", {"examples": []}, 400, "Missing 'inputs' or 'instances' key"),
    ("POST", "/v1/models/gan:predict", {"instances": [["a"] * 8]}, 400,
     "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: JSON Value: "
     '"a" Type: String is not of expected type: float'),
    ("POST", "/v1/models/gan:predict", {"instances": [[0.0] * 8, [0.0] * 7]}, 400,
     "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: Expecting tensor "
     "size: 8 but got: 7"),
    ("POST", "/v1/models/toy:predict", {"signature_name": "pair", "instances": [[1.0, 2.0]]}, 400,
     "instances is a plain list, but expecting list of objects as multiple input tensors required "
     "as per tensorinfo_map"),
    ("POST", "/v1/models/toy:predict", {"signature_name": "pair", "inputs": {"a": [[1.0, 2.0]]}}, 400,
     "Missing named input: b in 'inputs' object."),
    ("POST", "/v1/models/toy:predict", {"inputs": [[16777217, 0, 0]]}, 400,
     "Cannot convert JSON value: 16777217 to float without loss of precision."),
    ("POST", "/v1/models/gan:explode", {}, 400, "Malformed request: POST /v1/models/gan:explode"),
    ("GET", "/v1/models", None, 400, "Missing model name in request."),
    ("GET", "/v1/models/..%2F..%2Fetc%2Fpasswd", None, 404,
     "Could not find any versions of model ../../etc/passwd"),
    ("GET", "/v1/models/..%2Fgan/metadata", None, 404, "Servable not found for request: Latest(../gan)"),
    ("POST", "/v1/models/gan:classify", {"examples": [{"x": 1}]}, 400,
     "Expected classification signature method_name to be tensorflow/serving/classify. "
     "Was: tensorflow/serving/predict"),
]


@pytest.mark.parametrize("method, path, body, code, message", REST_ERRORS,
                         ids=[f"{case[0]} {case[1]} {case[3]}" for case in REST_ERRORS])
def test_rest_errors(server, method, path, body, code, message):
    assert server.http(method, path, body) == (code, {"error": message})
    assert_still_serving(server)


def test_hostile_requests_do_not_take_the_server_down(server):
    code, body = server.http("POST", "/v1/models/gan:predict", b'{"inputs": ' + b"[" * 100_000)
    assert code == 400 and body["error"].startswith("JSON Parse error")
    request = predict_request("gan", {"z": np.zeros((1, 8), np.float32)})
    request.inputs["z"].tensor_shape.dim[0].size = 2**40  # terabytes, from one repeated value
    request.inputs["z"].float_val.append(0.0)
    request.inputs["z"].tensor_content = b""
    assert rpc_error(server.predictions.Predict, request) == (
        grpc.StatusCode.INVALID_ARGUMENT, "tensor parsing error: z")
    assert server.http("DELETE", "/v1/models/gan", None) == (
        400, {"error": "Malformed request: DELETE /v1/models/gan"})
    assert_still_serving(server)


def test_a_batch_too_large_to_answer_is_refused_before_it_runs(server):
    # One million seeds are 8 MB of request but 16 GB of 16^3 float voxels.
    request = predict_request("shapes", {"seed": np.zeros((1,), np.int64)}, signature="sample")
    request.inputs["seed"].tensor_shape.dim[0].size = 1_000_000
    code, message = rpc_error(server.predictions.Predict, request)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert message.startswith("OOM when allocating the outputs of a batch of 1000000: 15,656 MiB "
                              "(voxels: shape [1000000,16,16,16] float)")
    assert "Send at most 130" in message and "--max_request_output_mb" in message
    code, body = server.http("POST", "/v1/models/shapes:predict",
                             {"signature_name": "sample", "inputs": {"seed": list(range(200_000))}})
    assert code == 429 and body["error"].startswith("OOM when allocating the outputs of a batch of 200000")
    assert_still_serving(server)


def test_rest_wrong_shape_names_the_expected_shape(server):
    code, body = server.http("POST", "/v1/models/gan:predict", {"inputs": {"z": [[0.5] * 7]}})
    assert code == 400 and body["error"] == (
        "input 'z' has shape [1,7] but signature 'serving_default' expects [-1,8] (-1: any size)")


# -- versions on disk -------------------------------------------------------------------

def test_new_version_while_a_client_loop_runs(setup, server):
    root = setup["root"]
    seen, failures, stop = [], [], threading.Event()

    def loop():
        while not stop.is_set():
            try:
                response = server.predictions.Predict(
                    predict_request("live", {"x": [[1.0, 1.0, 1.0]]}), timeout=30)
                seen.append((response.model_spec.version.value, float(output(response, "y")[0, 0])))
            except grpc.RpcError as error:
                failures.append(f"{error.code()}: {error.details()}")

    threads = [threading.Thread(target=loop) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        export_toy(root / "live_staging", 3.0)
        (root / "live_staging").rename(root / "live" / "2")  # atomic, as tf3dgan.export does
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(version == 2 for version, _ in seen[-5:]):
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []
    assert set(seen) == {(1, 1.0), (2, 3.0)}
    assert seen[-1] == (2, 3.0)
    server.wait_until_available("live", 2)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # version 1 unloads once version 2 serves
        response = server.models.GetModelStatus(
            get_model_status_pb2.GetModelStatusRequest(model_spec={"name": "live"}), timeout=30)
        states = [(s.version, s.state) for s in response.model_version_status]
        if states == [(2, State.AVAILABLE), (1, State.END)]:
            break
        time.sleep(0.2)
    assert states == [(2, State.AVAILABLE), (1, State.END)]


def test_corrupt_version_directory(setup, server):
    live = setup["root"] / "live"
    staging = setup["root"] / "corrupt_staging"
    staging.mkdir()
    (staging / "saved_model.pb").write_bytes(b"this is not a SavedModel")
    staging.rename(live / "7")  # whole, so the poller never sees it without its file
    try:
        deadline = time.monotonic() + 30
        request = get_model_status_pb2.GetModelStatusRequest(
            model_spec={"name": "live", "version": {"value": 7}})
        status = None
        while time.monotonic() < deadline:
            try:
                status = server.models.GetModelStatus(request, timeout=30).model_version_status[0]
                if status.state == State.END:
                    break
            except grpc.RpcError as error:  # NOT_FOUND until the poller has seen version 7
                assert error.code() == grpc.StatusCode.NOT_FOUND
            time.sleep(0.2)
        assert status is not None, "version 7 never appeared"
        assert status.state == State.END
        assert status.status.error_code == grpc.StatusCode.DATA_LOSS.value[0]
        assert "saved_model.pb" in status.status.error_message
        # The version before it keeps serving.
        response = server.predictions.Predict(predict_request("live", {"x": [[1.0, 1.0, 1.0]]}), timeout=30)
        assert response.model_spec.version.value != 7
        code, body = server.http("GET", "/v1/models/live/versions/7")
        assert code == 200 and body["model_version_status"][0]["state"] == "END"
        assert body["model_version_status"][0]["status"]["error_code"] == "DATA_LOSS"
    finally:
        shutil.rmtree(live / "7")


def test_failed_warmup_fails_the_load(setup, server):
    live = setup["root"] / "live"
    staging = setup["root"] / "warmup_staging"
    shutil.copytree(live / "2", staging)
    (staging / "assets.extra").mkdir()
    log = prediction_log_pb2.PredictionLog()
    log.predict_log.request.CopyFrom(predict_request("live", {"x": [[1.0] * 3]}, signature="nope"))
    with tf.io.TFRecordWriter(str(staging / "assets.extra" / "tf_serving_warmup_requests")) as writer:
        writer.write(log.SerializeToString())
    staging.rename(live / "9")
    try:
        request = get_model_status_pb2.GetModelStatusRequest(
            model_spec={"name": "live", "version": {"value": 9}})
        deadline, status = time.monotonic() + 30, None
        while time.monotonic() < deadline:
            try:
                status = server.models.GetModelStatus(request, timeout=30).model_version_status[0]
                if status.state == State.END:
                    break
            except grpc.RpcError:
                pass
            time.sleep(0.2)
        assert status is not None and status.state == State.END
        assert (status.status.error_code, status.status.error_message) == (
            grpc.StatusCode.FAILED_PRECONDITION.value[0], 'Serving signature key "nope" not found.')
        response = server.predictions.Predict(predict_request("live", {"x": [[1.0] * 3]}), timeout=30)
        assert response.model_spec.version.value == 2
    finally:
        shutil.rmtree(live / "9")


# -- config reloads ------------------------------------------------------------------------

def test_reload_config_errors(setup, server):
    request = model_management_pb2.ReloadConfigRequest()
    request.config.custom_model_config.type_url = "x"
    assert rpc_error(server.models.HandleReloadConfigRequest, request) == (
        grpc.StatusCode.INVALID_ARGUMENT, "ServerModelConfig type not supported by "
        "HandleReloadConfigRequest. Only ModelConfigList is currently supported")
    request = model_management_pb2.ReloadConfigRequest()
    for _ in range(2):
        request.config.model_config_list.config.add(name="gan", base_path=str(setup["root"] / "gan"),
                                                    model_platform="tensorflow")
    assert rpc_error(server.models.HandleReloadConfigRequest, request) == (
        grpc.StatusCode.INVALID_ARGUMENT, "Illegal to list model gan multiple times in config list")
    assert_still_serving(server)


def test_reload_config_removes_a_model(setup, server):
    config = text_format.Parse((setup["root"] / "models.config").read_text(),
                               model_server_config_pb2.ModelServerConfig())
    kept = [model for model in config.model_config_list.config if model.name != "doomed"]
    del config.model_config_list.config[:]
    config.model_config_list.config.extend(kept)
    live = next(model for model in config.model_config_list.config if model.name == "live")
    live.model_version_policy.latest.num_versions = 2  # was the default, latest 1
    response = server.models.HandleReloadConfigRequest(
        model_management_pb2.ReloadConfigRequest(config=config), timeout=60)
    assert response.status.error_code == 0
    # live's version 1 (unloaded when 2 came) serves again under the new policy.
    response = server.predictions.Predict(predict_request("live", {"x": [[1.0] * 3]}, version=1), timeout=30)
    assert output(response, "y")[0, 0] == 1.0
    assert rpc_error(server.predictions.Predict, predict_request("doomed", {"x": [[1.0] * 3]})) == (
        grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(doomed)")
    status = server.models.GetModelStatus(
        get_model_status_pb2.GetModelStatusRequest(model_spec={"name": "doomed"}), timeout=30)
    assert json_format.MessageToDict(status)["model_version_status"][0]["state"] == "END"
    assert_still_serving(server)  # the other models are untouched
