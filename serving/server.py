"""`python -m serving.server`: a model server that speaks TensorFlow Serving's protocol.

The flags are tensorflow_model_server's (same names, same defaults, `--flag=value`
or `--flag value`), plus `--host` (the address both front ends bind; 127.0.0.1
unless told otherwise):

    python -m serving.server --port=8500 --rest_api_port=8501 \\
        --model_name=tf3dgan --model_base_path=/abs/path/to/export

    python -m serving.server --port=8500 --model_config_file=models.config \\
        --enable_batching --batching_parameters_file=batching.config

It serves tensorflow.serving.PredictionService and ModelService over gRPC and
the /v1/models REST API, loads new version directories as they appear
(--file_system_poll_wait_seconds) and unloads removed ones.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
from google.protobuf import text_format  # noqa: E402
from tensorflow_serving.config import model_server_config_pb2  # noqa: E402

from serving import batching, grpc_service, limits, rest, status  # noqa: E402
from serving.core import ServingCore  # noqa: E402
from serving.manager import ModelManager, single_model_config  # noqa: E402
from serving.servable import SavedModelServable, session_config  # noqa: E402
from serving.status import ServingError  # noqa: E402

logger = logging.getLogger("serving")


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "t", "yes", "y"):
        return True
    if value in ("0", "false", "f", "no", "n"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, received {text!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m serving.server",
        description="A TensorFlow-Serving-compatible model server (gRPC + REST).")
    flag = parser.add_argument
    flag("--port", type=int, default=8500, help="gRPC port (tensorflow_model_server default 8500)")
    flag("--rest_api_port", type=int, default=0, help="REST port; 0 (default) turns REST off")
    flag("--host", default="127.0.0.1",
         help="address both front ends bind (not a TF Serving flag); 0.0.0.0 for every interface")
    flag("--rest_api_timeout_in_ms", type=int, default=30000,
         help="session run timeout of REST calls, in milliseconds")
    flag("--model_name", default="default", help="name of the model with --model_base_path")
    flag("--model_base_path", default="",
         help="directory holding the model's versions (<path>/<integer>/saved_model.pb)")
    flag("--model_config_file", default="",
         help="text ModelServerConfig (model_config_list); overrides --model_name/--model_base_path")
    flag("--model_config_file_poll_wait_seconds", type=int, default=0,
         help="re-read --model_config_file this often; 0 reads it once")
    flag("--file_system_poll_wait_seconds", type=int, default=1,
         help="interval between scans of the base paths for new versions; 0 scans once")
    flag("--enable_batching", type=_bool, nargs="?", const=True, default=False,
         help="merge concurrent requests into one session run")
    flag("--batching_parameters_file", default="",
         help="text BatchingParameters (max_batch_size, batch_timeout_micros, ...)")
    flag("--enable_model_warmup", type=_bool, nargs="?", const=True, default=True,
         help="replay assets.extra/tf_serving_warmup_requests when a version loads")
    flag("--tensorflow_intra_op_parallelism", type=int, default=0,
         help="intra-op threads of each model's session; 0 lets TensorFlow choose")
    flag("--tensorflow_inter_op_parallelism", type=int, default=0,
         help="inter-op threads of each model's session; 0 lets TensorFlow choose")
    flag("--max_request_output_mb", type=int, default=limits.DEFAULT_MAX_REQUEST_OUTPUT_MB,
         help="refuse (RESOURCE_EXHAUSTED) a request whose outputs would exceed this many MiB, "
              "before it runs; 0 turns the check off (not a TF Serving flag)")
    flag("--grpc_max_threads", type=int, default=64,
         help="gRPC worker threads: requests in flight at once (a batch can only merge those)")
    return parser


def read_model_config(path: str) -> model_server_config_pb2.ModelServerConfig:
    """Parses a text ModelServerConfig file.

    Raises:
        ValueError: saying what is wrong with the file.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as error:
        raise ValueError(f"Cannot read --model_config_file {path}: {error}") from error
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as error:
        raise ValueError(f"--model_config_file {path} is not a text ModelServerConfig: {error}") from error
    return config


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


class ModelServer:
    """The running server: manager, front ends and pollers.

    Args:
        args: Parsed flags.

    Raises:
        ValueError: for flag combinations and files that cannot work.
    """

    def __init__(self, args: argparse.Namespace):
        self.args = args
        if args.model_config_file:
            config = read_model_config(args.model_config_file)
        elif args.model_base_path:
            config = single_model_config(args.model_name, os.path.abspath(args.model_base_path))
        else:
            raise ValueError("Pass --model_base_path (with --model_name) or --model_config_file.")
        self._config = config
        if args.max_request_output_mb < 0:
            raise ValueError(f"--max_request_output_mb must be >= 0 (0 turns the limit off), "
                             f"received {args.max_request_output_mb}.")
        self.scheduler = None
        if args.batching_parameters_file and not args.enable_batching:
            raise ValueError("--batching_parameters_file is set but --enable_batching is not; "
                             "add --enable_batching.")
        if args.enable_batching:
            options = batching.BatchingOptions()
            if args.batching_parameters_file:
                with open(args.batching_parameters_file, encoding="utf-8") as handle:
                    options = batching.parse_batching_parameters(handle.read())
            logger.info("Batching: %s", options)
            self.scheduler = batching.BatchScheduler(options)
        config_proto = session_config(args.tensorflow_intra_op_parallelism,
                                      args.tensorflow_inter_op_parallelism)
        scheduler = self.scheduler

        def make_servable(name, version, path):
            return SavedModelServable(name, version, path, config_proto)

        def make_batching_runner(servable):
            return batching.BatchingRunner(servable, scheduler)

        self.manager = ModelManager(make_servable=make_servable,
                                    make_runner=make_batching_runner if scheduler else None,
                                    enable_warmup=args.enable_model_warmup)
        self.core = ServingCore(self.manager, self.args.max_request_output_mb)
        self.grpc_server = None
        self.rest_server = None
        self._stopped = threading.Event()

    def start(self) -> None:
        try:
            self.manager.reload_config(self._config)
        except ServingError as error:
            if error.code != status.UNKNOWN:  # UNKNOWN: a model did not load; serve the others
                raise ValueError(f"Invalid model config: {error}") from error
            logger.error("%s", error)
        self.manager.start_polling(self.args.file_system_poll_wait_seconds)
        if self.args.model_config_file and self.args.model_config_file_poll_wait_seconds > 0:
            threading.Thread(target=self._poll_config_file, daemon=True,
                             name="model_config_poller").start()
        address = _address(self.args.host, self.args.port)
        self.grpc_server, port = grpc_service.create_server(self.core, address, self.args.grpc_max_threads)
        self.grpc_server.start()
        print(f"Running gRPC ModelServer at {_address(self.args.host, port)} ...", flush=True)
        if self.args.rest_api_port > 0:
            api = rest.RestApi(self.core, self.args.rest_api_timeout_in_ms)
            self.rest_server = rest.start_rest_server(api, self.args.host, self.args.rest_api_port)
            print(f"Exporting HTTP/REST API at:{_address(self.args.host, self.args.rest_api_port)} ...",
                  flush=True)

    def _poll_config_file(self) -> None:
        last = self._config
        while not self._stopped.wait(self.args.model_config_file_poll_wait_seconds):
            try:
                config = read_model_config(self.args.model_config_file)
                if config != last:
                    logger.info("Model config file changed; reloading.")
                    self.manager.reload_config(config)
                    last = config
            except (ValueError, ServingError) as error:
                logger.error("Reloading %s failed: %s", self.args.model_config_file, error)

    def stop(self) -> None:
        self._stopped.set()
        if self.grpc_server is not None:
            self.grpc_server.stop(grace=2).wait(5)
        if self.rest_server is not None:
            self.rest_server.shutdown()
            self.rest_server.server_close()
        self.manager.stop()
        if self.scheduler is not None:
            self.scheduler.stop()

    def wait(self) -> None:
        # A timed wait: the main thread must run Python code now and then for a
        # signal handler to run when the signal lands on another thread.
        while not self._stopped.wait(0.5):
            pass


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s.%(msecs)03d %(levelname).1s serving] %(message)s",
                        datefmt="%Y-%m-%d %H:%M:%S")
    tf.get_logger().setLevel(logging.ERROR)
    args = build_parser().parse_args(argv)
    try:
        server = ModelServer(args)
        server.start()
    except (ValueError, OSError, RuntimeError) as error:
        print(f"Failed to start server. Error: {error}", file=sys.stderr, flush=True)
        return 1

    def shutdown(signum, frame):
        logger.info("Received signal %d; shutting down.", signum)
        server._stopped.set()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    server.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
