"""The 3D-GAN and 3D-VAE-GAN networks, and the models that train them."""

from tf3dgan.models.discriminator import Discriminator
from tf3dgan.models.encoder import ImageEncoder
from tf3dgan.models.gan import GAN3D
from tf3dgan.models.generator import Generator
from tf3dgan.models.vae_gan import VAEGAN3D

__all__ = ["GAN3D", "VAEGAN3D", "Discriminator", "Generator", "ImageEncoder"]
