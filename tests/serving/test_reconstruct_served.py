"""A 3D-VAE-GAN's `reconstruct` signatures served by `python -m serving.server`: an image over gRPC
and REST (floats, and PNG/JPEG bytes) gives what the in-process model gives; the client writes a mesh.

One server (a subprocess on 127.0.0.1) serves a tiny VAEGAN3D (16^3 grids, 32x32 images)
exported with `tf3dgan.export.export_model`, with --enable_batching so that string
inputs also go through the batching queue.
"""

from __future__ import annotations

import base64
import io
import threading

import grpc
import keras
import numpy as np
import pytest
import tensorflow as tf
import trimesh
from PIL import Image
from serving_harness import ServerProcess, output, predict_request
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, prediction_log_pb2

from serving import client as client_lib
from tf3dgan import config as config_lib
from tf3dgan import export, signatures
from tf3dgan.models.vae_gan import build_vae_gan

CONFIG = config_lib.SMOKE_VAE
IMAGE_SIZE = CONFIG.model.image_size  # 32
RESOLUTION = CONFIG.model.resolution  # 16
BACKGROUND = np.array(signatures.IMAGE_BACKGROUND, np.float32)
TOLERANCE = dict(rtol=1e-5, atol=1e-6)


def _model():
    keras.utils.set_random_seed(0)
    model = build_vae_gan(CONFIG.model, CONFIG.train)
    # BatchNorm statistics far from their initial values: a signature running BatchNorm
    # in training mode (or on fresh statistics) cannot pass.
    rng = np.random.default_rng(0)
    for network in (model.generator, model.encoder):
        for weight in network.weights:
            if weight.path.endswith("moving_mean"):
                weight.assign(rng.normal(0.0, 0.5, weight.shape))
            elif weight.path.endswith("moving_variance"):
                weight.assign(rng.uniform(0.5, 2.0, weight.shape))
    return model


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("reconstruct_served")
    model = _model()
    export.export_model(model, root / "vae", 1, model_card=export.model_card(
        CONFIG, steps_trained=0, data_description="untrained, for tests"))
    (root / "batching.config").write_text("max_batch_size { value: 8 }\nbatch_timeout_micros { value: 200000 }\n"
                                          "num_batch_threads { value: 1 }\n")
    server = ServerProcess([f"--model_base_path={root / 'vae'}", "--model_name=vae", "--enable_batching",
                            f"--batching_parameters_file={root / 'batching.config'}"], root / "server.log")
    try:
        server.wait_until_available("vae")
        yield {"server": server, "model": model, "root": root}
    finally:
        server.kill()


@pytest.fixture(scope="module")
def images():
    """Three 8-bit RGB images of the encoder's size."""
    return np.random.default_rng(1).integers(0, 256, (3, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)


def _in_process(model, images_float):
    z_mean, _ = model.encode(images_float, training=False)
    return model.reconstruct(images_float, training=False).numpy(), z_mean.numpy()


def _encoded(array, file_format="PNG", mode=None):
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format=file_format)
    return buffer.getvalue()


def _strings(files):
    data = np.empty(len(files), object)
    data[:] = files
    return data


def test_the_export_has_the_image_signatures_warmup_requests_and_image_size(setup):
    version = setup["root"] / "vae" / "1"
    card = export.read_model_card(version)
    assert card["image_size"] == IMAGE_SIZE and card["image_background"] == [242, 242, 242]
    assert card["prior"] == "standard_normal" and card["prior_distribution"] == "Normal(0, 1)"
    assert sorted(card["signatures"]) == sorted(signatures.signature_names(True))
    assert card["signatures"]["reconstruct_bytes"]["inputs"] == {"image_bytes": {"dtype": "string", "shape": [None]}}
    assert card["signatures"]["reconstruct"]["outputs"] == {
        "voxels": {"dtype": "float32", "shape": [None, RESOLUTION, RESOLUTION, RESOLUTION]},
        "z_mean": {"dtype": "float32", "shape": [None, CONFIG.model.latent_dim]}}
    records = tf.data.TFRecordDataset(str(version / "assets.extra" / export.WARMUP_FILE))
    requests = {log.predict_log.request.model_spec.signature_name: log.predict_log.request
                for log in (prediction_log_pb2.PredictionLog.FromString(record.numpy()) for record in records)}
    assert sorted(requests) == sorted(signatures.signature_names(True))
    png = tf.make_ndarray(requests["reconstruct_bytes"].inputs["image_bytes"])
    assert png.shape == (1,) and tf.io.decode_png(png[0]).shape == (IMAGE_SIZE, IMAGE_SIZE, 3)


def test_the_served_model_lists_both_image_signatures(setup):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "vae"
    response = setup["server"].predictions.GetModelMetadata(request, timeout=30)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signature_map)
    definitions = signature_map.signature_def
    assert set(signatures.RECONSTRUCTION_SIGNATURE_NAMES) <= set(definitions)
    images_input = definitions["reconstruct"].inputs["images"]
    assert images_input.dtype == types_pb2.DT_FLOAT
    assert [dim.size for dim in images_input.tensor_shape.dim] == [-1, -1, -1, 3]
    bytes_input = definitions["reconstruct_bytes"].inputs["image_bytes"]
    assert bytes_input.dtype == types_pb2.DT_STRING and [d.size for d in bytes_input.tensor_shape.dim] == [-1]
    for name in signatures.RECONSTRUCTION_SIGNATURE_NAMES:
        assert sorted(definitions[name].outputs) == ["voxels", "z_mean"]


def test_grpc_float_images_give_the_in_process_reconstruction(setup, images):
    floats = images.astype(np.float32) / 255.0
    response = setup["server"].predictions.Predict(
        predict_request("vae", {"images": floats}, "reconstruct"), timeout=60)
    voxels, z_mean = _in_process(setup["model"], floats)
    assert output(response, "voxels").shape == (3, RESOLUTION, RESOLUTION, RESOLUTION)
    np.testing.assert_allclose(output(response, "voxels"), voxels, **TOLERANCE)
    np.testing.assert_allclose(output(response, "z_mean"), z_mean, **TOLERANCE)
    # Served values come back in typed fields (float_val), as from TF Serving.
    assert len(response.outputs["voxels"].float_val) == voxels.size


def test_grpc_png_bytes_give_the_reconstruction_of_the_image_over_255(setup, images):
    files = _strings([_encoded(image) for image in images])
    request = predict_request("vae", {"image_bytes": files}, "reconstruct_bytes")
    assert request.inputs["image_bytes"].dtype == types_pb2.DT_STRING
    assert len(request.inputs["image_bytes"].string_val) == 3
    response = setup["server"].predictions.Predict(request, timeout=60)
    voxels, z_mean = _in_process(setup["model"], images.astype(np.float32) / 255.0)
    np.testing.assert_allclose(output(response, "voxels"), voxels, **TOLERANCE)
    np.testing.assert_allclose(output(response, "z_mean"), z_mean, **TOLERANCE)


def test_grey_rgba_jpeg_and_larger_images_are_converted_as_documented(setup, images):
    rgb = images[0]
    grey = rgb[..., 0]
    alpha = np.random.default_rng(2).integers(0, 256, rgb.shape[:2], dtype=np.uint8)
    large = np.kron(rgb, np.ones((2, 2, 1), np.uint8))  # 64x64: resized to 32x32 on the server
    jpeg = _encoded(rgb, "JPEG")
    files = _strings([_encoded(grey), _encoded(np.dstack([rgb, alpha]), mode="RGBA"), jpeg, _encoded(large)])
    response = setup["server"].predictions.Predict(
        predict_request("vae", {"image_bytes": files}, "reconstruct_bytes"), timeout=60)
    # The NumPy reference of each conversion.
    opacity = alpha[..., None].astype(np.float32) / 255.0
    # TensorFlow's JPEG decoder (libjpeg's fast integer IDCT) differs from Pillow's by a few
    # levels: the reference decodes with TensorFlow too.
    decoded_jpeg = tf.io.decode_jpeg(jpeg).numpy()
    resized = tf.image.resize(large.astype(np.float32)[None] / 255.0, [IMAGE_SIZE, IMAGE_SIZE],
                              antialias=True).numpy()[0]
    expected_images = np.stack([
        np.repeat(grey[..., None], 3, axis=-1).astype(np.float32) / 255.0,
        rgb.astype(np.float32) / 255.0 * opacity + BACKGROUND * (1.0 - opacity),
        decoded_jpeg.astype(np.float32) / 255.0,
        resized,
    ])
    voxels, _ = _in_process(setup["model"], expected_images)
    np.testing.assert_allclose(output(response, "voxels"), voxels, rtol=1e-4, atol=1e-5)


def test_rest_float_images_and_b64_pngs_give_the_in_process_reconstruction(setup, images):
    server = setup["server"]
    floats = images.astype(np.float32) / 255.0
    voxels, z_mean = _in_process(setup["model"], floats)
    code, body = server.http("POST", "/v1/models/vae:predict", {
        "signature_name": "reconstruct", "inputs": {"images": floats.tolist()}})
    assert code == 200, body
    np.testing.assert_allclose(np.array(body["outputs"]["voxels"], np.float32), voxels, **TOLERANCE)
    np.testing.assert_allclose(np.array(body["outputs"]["z_mean"], np.float32), z_mean, **TOLERANCE)
    # Row format with one input: `instances` is the list of {"b64": ...} values itself.
    instances = [{"b64": base64.b64encode(_encoded(image)).decode()} for image in images]
    code, body = server.http("POST", "/v1/models/vae:predict",
                             {"signature_name": "reconstruct_bytes", "instances": instances})
    assert code == 200, body
    assert len(body["predictions"]) == 3
    served = np.array([prediction["voxels"] for prediction in body["predictions"]], np.float32)
    np.testing.assert_allclose(served, voxels, **TOLERANCE)
    # Columnar format.
    code, body = server.http("POST", "/v1/models/vae:predict",
                             {"signature_name": "reconstruct_bytes", "inputs": {"image_bytes": instances[:1]}})
    assert code == 200, body
    np.testing.assert_allclose(np.array(body["outputs"]["voxels"], np.float32), voxels[:1], **TOLERANCE)


def test_bytes_that_are_not_an_image_are_invalid_argument(setup):
    server = setup["server"]
    with pytest.raises(grpc.RpcError) as raised:
        server.predictions.Predict(predict_request(
            "vae", {"image_bytes": _strings([b"not an image"])}, "reconstruct_bytes"), timeout=60)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Unknown image file format" in raised.value.details()
    code, body = server.http("POST", "/v1/models/vae:predict", {
        "signature_name": "reconstruct_bytes", "instances": [{"b64": base64.b64encode(b"nope").decode()}]})
    assert code == 400 and "Unknown image file format" in body["error"]


def test_concurrent_byte_requests_of_different_sizes_are_answered_as_when_alone(setup, images):
    server = setup["server"]
    big = np.kron(images[1], np.ones((3, 3, 1), np.uint8))
    requests = [_strings([_encoded(images[0])]), _strings([_encoded(big), _encoded(images[2])])]
    results = [None, None]

    def call(index):
        results[index] = output(server.predictions.Predict(
            predict_request("vae", {"image_bytes": requests[index]}, "reconstruct_bytes"), timeout=60), "voxels")

    threads = [threading.Thread(target=call, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    alone = [output(server.predictions.Predict(predict_request(
        "vae", {"image_bytes": files}, "reconstruct_bytes"), timeout=60), "voxels") for files in requests]
    for together, separately in zip(results, alone):
        np.testing.assert_allclose(together, separately, **TOLERANCE)


def test_the_client_writes_the_mesh_render_and_voxels_of_a_photo(setup, images, tmp_path, capsys):
    server = setup["server"]
    photo = tmp_path / "photo.png"
    photo.write_bytes(_encoded(images[0]))
    voxels, _ = _in_process(setup["model"], images[:1].astype(np.float32) / 255.0)
    # An untrained model: a threshold that leaves about half the voxels occupied.
    threshold = float(np.median(voxels))
    with client_lib.ServingClient(f"127.0.0.1:{server.grpc_port}", "vae") as client:
        np.testing.assert_allclose(client.reconstruct([photo.read_bytes()])["voxels"], voxels, **TOLERANCE)
        np.testing.assert_allclose(client.reconstruct_images(images[:1])["voxels"], voxels, **TOLERANCE)
    # python -m serving.client --server ... --model_name vae reconstruct photo.png --out chair.obj ...
    code = client_lib.main(["--server", f"127.0.0.1:{server.grpc_port}", "--model_name", "vae", "reconstruct",
                            str(photo), "--out", str(tmp_path / "chair.obj"), "--png", str(tmp_path / "chair.png"),
                            "--voxels", str(tmp_path / "chair.npy"), "--threshold", f"{threshold:.9g}"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert printed.out.split() == [str(tmp_path / name) for name in ("chair.npy", "chair.png", "chair.obj")]
    np.testing.assert_allclose(np.load(tmp_path / "chair.npy"), voxels[0], **TOLERANCE)
    mesh = trimesh.load(tmp_path / "chair.obj", force="mesh")
    assert len(mesh.faces) > 0 and mesh.bounds.min() >= -0.5 and mesh.bounds.max() <= RESOLUTION + 0.5
    assert np.asarray(Image.open(tmp_path / "chair.png")).shape == (256, 256, 3)


def test_the_client_refuses_a_model_without_the_signature_and_a_bad_extension(setup, tmp_path, capsys):
    server = setup["server"]
    photo = tmp_path / "photo.png"
    photo.write_bytes(_encoded(np.zeros((8, 8, 3), np.uint8)))
    code = client_lib.main(["--server", f"127.0.0.1:{server.grpc_port}", "--model_name", "vae", "reconstruct",
                            str(photo), "--out", str(tmp_path / "chair.xyz")])
    assert code == 1 and "Unknown mesh format '.xyz'" in capsys.readouterr().err
    with client_lib.ServingClient(f"127.0.0.1:{server.grpc_port}", "vae") as client:
        client._signatures = {"serving_default": None}  # as a 3D-GAN without an encoder
        with pytest.raises(ValueError, match="has no 'reconstruct_bytes' signature"):
            client.reconstruct([photo.read_bytes()])
