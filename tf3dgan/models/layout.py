"""Layer widths and sizes shared by the generator and the discriminator.

The paper's 64^3 networks have five volumetric convolutions each, with widths
64-128-256-512 (D) mirrored by 512-256-128-64 (G), kernel 4, stride 2, and a
4^3 "seed" at the narrow end (G's first layer maps 1^3 -> 4^3, D's last layer
4^3 -> 1^3, both kernel 4 'valid'). The 32^3 (and 16^3) variants keep the five
layers and their widths and shrink only the seed, to 2^3 (1^3), so that the
discriminator's 2nd-4th layers give the same 7,168 recognition features
(128 + 256 + 512 channels, each pooled to 2^3) at 32^3 as at 64^3.
"""

from __future__ import annotations

from tf3dgan.config import SUPPORTED_RESOLUTIONS

NUM_STRIDED_LAYERS = 4  # each doubles (G) or halves (D) the grid
KERNEL_SIZE = 4


def check_resolution(resolution: int) -> None:
    if resolution not in SUPPORTED_RESOLUTIONS:
        raise ValueError(
            f"resolution={resolution!r} is not supported. Expected one of "
            f"{SUPPORTED_RESOLUTIONS} (64 is the paper's network, 32 the CPU variant)."
        )


def seed_size(resolution: int) -> int:
    """Edge of the smallest feature grid: 4 at 64^3, 2 at 32^3, 1 at 16^3."""
    return resolution // 2**NUM_STRIDED_LAYERS


def discriminator_widths(base_filters: int) -> list[int]:
    """Output channels of D's four strided layers: 64, 128, 256, 512 in the paper."""
    return [base_filters * 2**i for i in range(NUM_STRIDED_LAYERS)]


def generator_widths(base_filters: int) -> list[int]:
    """Output channels of G's first four layers: 512, 256, 128, 64 in the paper."""
    return list(reversed(discriminator_widths(base_filters)))
