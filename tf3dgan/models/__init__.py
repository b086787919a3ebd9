"""The 3D-GAN networks: generator, discriminator and the GAN that trains them."""

from tf3dgan.models.discriminator import Discriminator
from tf3dgan.models.gan import GAN3D
from tf3dgan.models.generator import Generator

__all__ = ["Discriminator", "GAN3D", "Generator"]
