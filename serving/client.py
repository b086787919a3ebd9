"""A client of TF Serving's gRPC API for tf3dgan models, and `python -m serving.client`.

It uses only the stock `tensorflow_serving.apis` stubs, so it works against
`tensorflow_model_server` and against `python -m serving.server` alike:

    python -m serving.client --server 127.0.0.1:8500 --model_name tf3dgan \\
        sample --num_samples 8 --seed 0 --output_dir samples/
    python -m serving.client --server 127.0.0.1:8500 --model_name tf3dgan metadata
    python -m serving.client --server 127.0.0.1:8500 --model_name tf3dgan \\
        features --voxels samples/voxels.npy --output_dir features/
    python -m serving.client --server 127.0.0.1:8500 --model_name tf3dgan_vae \\
        reconstruct photo.png --out chair.obj --png chair.png

`sample` asks the model's `sample` signature (seed -> z, voxels) when it has
one, else draws z from the prior here and calls `serving_default`; it writes
voxels.npy ([N, R, R, R] occupancy probabilities), z.npy and a PNG of the
renders. `features` runs `discriminator_features` on a .npy of grids.
`reconstruct` (a 3D-VAE-GAN) sends an image file's bytes, as they are, to the
`reconstruct_bytes` signature (decoded and resized on the server) and writes the
returned shape as a mesh (marching cubes, `tf3dgan.mesh`; .obj, .stl, .ply or
.glb by the extension), and optionally its render (--png) and its occupancy
probabilities (--voxels, .npy).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import grpc  # noqa: E402
import numpy as np  # noqa: E402
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2,  # noqa: E402
                                     model_pb2, model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc)

from serving import tensors  # noqa: E402

SAMPLE_SIGNATURE = "sample"
DEFAULT_SIGNATURE = "serving_default"
FEATURES_SIGNATURE = "discriminator_features"
RECONSTRUCT_SIGNATURE = "reconstruct"
RECONSTRUCT_BYTES_SIGNATURE = "reconstruct_bytes"
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]


class ServingClient:
    """Calls one model on a TF Serving (or compatible) server over gRPC.

    Args:
        target: "host:port" of the gRPC API.
        model_name: The model's name on the server.
        version: A version number to pin, or None for the latest.
        label: A version label ("stable", ...) instead of a number.
        timeout: Seconds per call.

    Raises:
        ValueError: if both `version` and `label` are given.
    """

    def __init__(self, target: str, model_name: str, version: int | None = None,
                 label: str | None = None, timeout: float = 60.0):
        if version is not None and label is not None:
            raise ValueError("Pass either version or label, not both "
                             f"(received version={version}, label={label!r}).")
        self.target = target
        self.model_name = model_name
        self.version = version
        self.label = label
        self.timeout = timeout
        # gRPC's default 4 MiB limit is one batch of four 64^3 float grids.
        self._channel = grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
        self._predictions = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)
        self._signatures = None

    def close(self) -> None:
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def model_spec(self, signature_name: str = "") -> model_pb2.ModelSpec:
        spec = model_pb2.ModelSpec(name=self.model_name, signature_name=signature_name)
        if self.version is not None:
            spec.version.value = self.version
        elif self.label is not None:
            spec.version_label = self.label
        return spec

    # -- generic calls ------------------------------------------------------------

    def predict(self, inputs: dict, signature_name: str = DEFAULT_SIGNATURE,
                output_filter=()) -> dict:
        """Predict: NumPy arrays in, NumPy arrays out (alias -> array)."""
        request = predict_pb2.PredictRequest(model_spec=self.model_spec(signature_name),
                                             output_filter=list(output_filter))
        for alias, value in inputs.items():
            request.inputs[alias].CopyFrom(tensors.to_proto(np.asarray(value)))
        response = self._predictions.Predict(request, timeout=self.timeout)
        return {alias: tensors.from_proto(proto) for alias, proto in response.outputs.items()}

    def signatures(self) -> dict:
        """The model's SignatureDefs (name -> SignatureDef), from GetModelMetadata."""
        if self._signatures is None:
            request = get_model_metadata_pb2.GetModelMetadataRequest(
                model_spec=self.model_spec(), metadata_field=["signature_def"])
            response = self._predictions.GetModelMetadata(request, timeout=self.timeout)
            signature_map = get_model_metadata_pb2.SignatureDefMap()
            response.metadata["signature_def"].Unpack(signature_map)
            self._signatures = dict(signature_map.signature_def)
        return self._signatures

    def metadata(self) -> dict:
        """The signatures as plain data: inputs/outputs with dtype names and shapes."""
        def describe(infos):
            return {alias: {"dtype": tensors.dtype_name(info.dtype),
                            "shape": None if info.tensor_shape.unknown_rank
                            else [int(dim.size) for dim in info.tensor_shape.dim]}
                    for alias, info in sorted(infos.items())}

        return {name: {"method_name": signature.method_name,
                       "inputs": describe(signature.inputs),
                       "outputs": describe(signature.outputs)}
                for name, signature in sorted(self.signatures().items())
                if not name.startswith("__")}

    def status(self) -> list[dict]:
        """GetModelStatus: [{"version", "state", "error_code", "error_message"}], newest first."""
        request = get_model_status_pb2.GetModelStatusRequest(model_spec=self.model_spec())
        response = self._models.GetModelStatus(request, timeout=self.timeout)
        state_names = get_model_status_pb2.ModelVersionStatus.State
        return [{"version": entry.version, "state": state_names.Name(entry.state),
                 "error_code": entry.status.error_code, "error_message": entry.status.error_message}
                for entry in response.model_version_status]

    def _cast(self, signature_name: str, inputs: dict) -> dict:
        declared = self.signatures()[signature_name].inputs
        return {alias: np.asarray(value).astype(tensors.numpy_dtype(declared[alias].dtype), copy=False)
                if alias in declared else value for alias, value in inputs.items()}

    # -- tf3dgan signatures ---------------------------------------------------------

    def sample(self, num_samples: int, seed: int = 0, prior: str = "uniform") -> dict:
        """Draws `num_samples` shapes; sample i depends on seed + i only.

        Uses the `sample` signature when the model has one (z drawn on the
        server from the training prior); otherwise draws z here with
        `tf3dgan.priors` (`prior` must then match the one the model was
        trained with) and calls `serving_default`.

        Returns:
            {"z": [N, latent_dim], "voxels": [N, R, R, R]}.
        """
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, received {num_samples}.")
        seeds = np.arange(seed, seed + num_samples, dtype=np.int64)
        signatures = self.signatures()
        if SAMPLE_SIGNATURE in signatures:
            return self.predict(self._cast(SAMPLE_SIGNATURE, {"seed": seeds}), SAMPLE_SIGNATURE)
        default = signatures.get(DEFAULT_SIGNATURE)
        if default is None or "z" not in default.inputs:
            raise ValueError(f"Model {self.model_name} has neither a '{SAMPLE_SIGNATURE}' signature "
                             f"nor a '{DEFAULT_SIGNATURE}' signature taking z; its signatures are "
                             f"{sorted(signatures)}.")
        latent_dim = int(default.inputs["z"].tensor_shape.dim[-1].size)
        from tf3dgan import priors

        z = np.asarray(priors.sample_latent_per_seed(prior, seeds, latent_dim))
        outputs = self.predict({"z": z}, DEFAULT_SIGNATURE)
        return {"z": z, **outputs}

    def features(self, voxels: np.ndarray) -> dict:
        """The discriminator's features and logits of voxel grids [N, R, R, R]."""
        if FEATURES_SIGNATURE not in self.signatures():
            raise ValueError(f"Model {self.model_name} has no '{FEATURES_SIGNATURE}' signature; "
                             f"its signatures are {sorted(self.signatures())}.")
        return self.predict(self._cast(FEATURES_SIGNATURE, {"voxels": voxels}), FEATURES_SIGNATURE)

    def _require(self, name: str) -> None:
        if name not in self.signatures():
            raise ValueError(f"Model {self.model_name} has no '{name}' signature, so it cannot "
                             "reconstruct shapes from images (export a 3D-VAE-GAN); its signatures are "
                             f"{sorted(name for name in self.signatures() if not name.startswith('__'))}.")

    def reconstruct(self, image_files) -> dict:
        """Shapes from encoded image files (PNG, JPEG, ...), decoded on the server.

        Args:
            image_files: A list of the files' bytes (one per shape).

        Returns:
            {"voxels": float32 [N, R, R, R] occupancy probabilities, "z_mean": [N, latent_dim]}.
        """
        self._require(RECONSTRUCT_BYTES_SIGNATURE)
        data = np.empty(len(image_files), object)
        data[:] = [bytes(content) for content in image_files]
        return self.predict({"image_bytes": data}, RECONSTRUCT_BYTES_SIGNATURE)

    def reconstruct_images(self, images) -> dict:
        """Shapes from RGB images: float [N, H, W, 3] in [0, 1] (or uint8, scaled by 1/255).

        Returns:
            {"voxels": float32 [N, R, R, R], "z_mean": [N, latent_dim]}.
        """
        self._require(RECONSTRUCT_SIGNATURE)
        images = np.asarray(images)
        if images.dtype == np.uint8:
            images = images.astype(np.float32) / 255.0
        return self.predict({"images": images.astype(np.float32)}, RECONSTRUCT_SIGNATURE)


# ----------------------------------------------------------------------------
# Command line.

def _write_sample(outputs: dict, output_dir: str, threshold: float, image_size: int) -> list[str]:
    from tf3dgan.data import render

    os.makedirs(output_dir, exist_ok=True)
    written = []
    for name in ("voxels", "z"):
        if name in outputs:
            path = os.path.join(output_dir, f"{name}.npy")
            np.save(path, outputs[name])
            written.append(path)
    voxels = outputs["voxels"]
    picture = render.render_grid(voxels, image_size=image_size, threshold=threshold,
                                 labels=[str(index) for index in range(len(voxels))])
    path = os.path.join(output_dir, "samples.png")
    render.save_png(picture, path)
    written.append(path)
    return written


def _write_reconstruction(voxels: np.ndarray, args) -> list[str]:
    """The mesh (and optionally the render and the grid) of one reconstructed shape."""
    from tf3dgan import mesh
    from tf3dgan.data import render

    written = []
    if args.voxels:
        os.makedirs(os.path.dirname(os.path.abspath(args.voxels)), exist_ok=True)
        np.save(args.voxels, voxels)
        written.append(args.voxels)
    if args.png:
        render.save_png(render.render_voxels(voxels, image_size=args.image_size, threshold=args.threshold),
                        args.png)
        written.append(args.png)
    surface = mesh.voxels_to_mesh(voxels, args.threshold, largest_component=args.largest_component,
                                  smooth_iterations=args.smooth_iterations)
    written.append(str(mesh.save_mesh(surface, args.out, resolution=voxels.shape[0])))
    return written


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m serving.client", description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="127.0.0.1:8500", help="gRPC host:port")
    parser.add_argument("--model_name", default="default")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--version", type=int, default=None, help="pin a version number")
    which.add_argument("--label", default=None, help="pin a version label")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per call")
    commands = parser.add_subparsers(dest="command", required=True)

    sample = commands.add_parser("sample", help="draw shapes; write .npy grids and a PNG")
    sample.add_argument("--num_samples", type=int, default=8)
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--prior", choices=("uniform", "normal", "standard_normal"), default="uniform",
                        help="only used when the model has no 'sample' signature")
    sample.add_argument("--threshold", type=float, default=0.5, help="occupancy threshold of the renders")
    sample.add_argument("--image_size", type=int, default=128, help="pixels per rendered tile")
    sample.add_argument("--output_dir", required=True)

    commands.add_parser("metadata", help="print the model's signatures as JSON")
    commands.add_parser("status", help="print the model's versions and their states as JSON")

    features = commands.add_parser("features", help="discriminator features of grids in a .npy")
    features.add_argument("--voxels", required=True, help=".npy of [N, R, R, R] grids")
    features.add_argument("--output_dir", required=True)

    reconstruct = commands.add_parser(
        "reconstruct", help="image file -> 3D shape (a 3D-VAE-GAN's reconstruct_bytes signature); writes a mesh")
    reconstruct.add_argument("image", help="a PNG, JPEG, GIF, BMP or WebP file (crop it to a square around "
                                           "the object for best results)")
    reconstruct.add_argument("--out", required=True, help="the mesh to write: .obj, .stl, .ply or .glb")
    reconstruct.add_argument("--png", default="", help="also write a render of the shape to this PNG")
    reconstruct.add_argument("--voxels", default="", help="also write the occupancy probabilities to this .npy")
    reconstruct.add_argument("--threshold", type=float, default=0.5, help="occupancy threshold of the surface")
    reconstruct.add_argument("--largest_component", action="store_true",
                             help="keep only the largest connected part of the shape")
    reconstruct.add_argument("--smooth_iterations", type=int, default=0,
                             help="Taubin smoothing passes of the mesh (0: none)")
    reconstruct.add_argument("--image_size", type=int, default=256, help="pixels per side of the --png render")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with ServingClient(args.server, args.model_name, args.version, args.label,
                           args.timeout) as client:
            if args.command == "metadata":
                print(json.dumps(client.metadata(), indent=2))
            elif args.command == "status":
                print(json.dumps(client.status(), indent=2))
            elif args.command == "sample":
                outputs = client.sample(args.num_samples, args.seed, args.prior)
                for path in _write_sample(outputs, args.output_dir, args.threshold, args.image_size):
                    print(path)
            elif args.command == "reconstruct":
                from tf3dgan import mesh

                # Checked before the request, so a typo costs no round trip.
                mesh.check_format(os.path.splitext(args.out)[1] or "(none)")
                mesh.check_threshold(args.threshold)
                with open(args.image, "rb") as handle:
                    outputs = client.reconstruct([handle.read()])
                voxels = outputs["voxels"][0]
                for path in _write_reconstruction(voxels, args):
                    print(path)
                print(f"{int(np.sum(voxels > args.threshold))} of {voxels.size} voxels above {args.threshold:g}",
                      file=sys.stderr)
            elif args.command == "features":
                outputs = client.features(np.load(args.voxels))
                os.makedirs(args.output_dir, exist_ok=True)
                for name, array in sorted(outputs.items()):
                    path = os.path.join(args.output_dir, f"{name}.npy")
                    np.save(path, array)
                    print(f"{path} {list(array.shape)}")
    except grpc.RpcError as error:
        print(f"error: {error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
