"""The per-request output budget: a batch too large to answer is refused before it runs.

`tensorflow_model_server` runs whatever batch a request carries; a request for a
million samples of a 64^3 generator (4 TiB of float voxels) then ends in
TensorFlow's RESOURCE_EXHAUSTED "OOM when allocating tensor ..." at best, and in
the kernel's OOM killer taking the whole server down at worst. A few bytes of
request (the `sample` signature takes one int64 seed per sample) must not be
able to do that, so before a Predict runs, the size of its fetched outputs is
computed from the signature (known dimensions times the request's batch) and a
request over `--max_request_output_mb` gets the same code TensorFlow would
give, RESOURCE_EXHAUSTED, with the numbers and the fix. This is our flag, not
one of tensorflow_model_server's; 0 turns the check off.
"""

from __future__ import annotations

import numpy as np
from tensorflow.core.framework import types_pb2

from serving import status, tensors
from serving.status import ServingError

DEFAULT_MAX_REQUEST_OUTPUT_MB = 2048
_MIB = 2**20
# Strings have no fixed size; counted at a pointer's width, like the tensor itself.
_STRING_BYTES = 8


def _item_bytes(dtype: int) -> int:
    if dtype == types_pb2.DT_STRING:
        return _STRING_BYTES
    try:
        return tensors.numpy_dtype(dtype).itemsize
    except (KeyError, ValueError, TypeError):
        return 0  # types without a NumPy counterpart (resource, variant) are not counted


def _request_batch(feeds: list) -> int | None:
    """The batch of a request: the leading dimension of its first batched input."""
    for _, _, array in feeds:
        shape = np.shape(array)
        if shape:
            return int(shape[0])
    return None


def output_bytes(signature, fetch_aliases: list, batch: int) -> tuple[int, str]:
    """Bytes of the fetched outputs of one run, and the largest output's description.

    Dimensions the signature leaves unknown count as `batch` for the leading one
    and 1 otherwise, so the figure is a lower bound: what certainly would be allocated.
    """
    total, largest, largest_text = 0, -1, ""
    for alias in fetch_aliases:
        info = signature.outputs[alias]
        if info.tensor_shape.unknown_rank:
            continue
        dims = [dim.size for dim in info.tensor_shape.dim]
        dims = [batch if (index == 0 and size < 0) else max(size, 1) for index, size in enumerate(dims)]
        size = int(np.prod(dims, dtype=np.float64)) * _item_bytes(info.dtype)
        total += size
        if size > largest:
            largest = size
            largest_text = f"{alias}: shape [{','.join(map(str, dims))}] {tensors.dtype_name(info.dtype)}"
    return total, largest_text


def check_output_budget(signature, prepared, max_output_mb: int) -> None:
    """Refuses a Predict whose outputs would exceed `max_output_mb` MiB.

    Args:
        signature: The SignatureDef the request resolved to.
        prepared: The validated request (`servable.PreparedRun`).
        max_output_mb: The budget; 0 turns the check off.

    Raises:
        ServingError: RESOURCE_EXHAUSTED, naming the size, the limit and the fix.
    """
    if max_output_mb <= 0:
        return
    batch = _request_batch(prepared.feeds)
    if batch is None:
        return
    total, largest = output_bytes(signature, prepared.fetch_aliases, batch)
    if total <= max_output_mb * _MIB:
        return
    per_sample = max(total // max(batch, 1), 1)
    most = max_output_mb * _MIB // per_sample
    raise ServingError(status.RESOURCE_EXHAUSTED, (
        f"OOM when allocating the outputs of a batch of {batch}: {total / _MIB:,.0f} MiB "
        f"({largest}), over this server's limit of {max_output_mb} MiB per request "
        f"(--max_request_output_mb). Send at most {most} per request, or start the server "
        "with a larger --max_request_output_mb."))
