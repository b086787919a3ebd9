"""VAEGAN3D: the 3D-VAE-GAN training model (an image encoder, a generator and a discriminator)."""

from __future__ import annotations

import keras
import tensorflow as tf

from tf3dgan import losses
from tf3dgan.config import RECONSTRUCTION_LOSSES, VAE_GAN_PRIOR
from tf3dgan.models.encoder import ImageEncoder
from tf3dgan.models.gan import GAN3D, METRIC_NAMES, adam, build_networks

VAE_METRIC_NAMES = METRIC_NAMES + ("kl_loss", "reconstruction_loss", "reconstruction_iou")
# Noise stream of the reparameterization's epsilon (0 and 1 are the GAN's z).
_EPSILON_STREAM = 2


@keras.saving.register_keras_serializable(package="tf3dgan")
class VAEGAN3D(GAN3D):
    """Trains an `ImageEncoder` E with a 3D-GAN's G and D on (image, shape) pairs.

    The loss of Wu et al. (2016), section 3.2:
    L = L_3D-GAN + a1 * KL(q(z|y) || N(0, I)) + a2 * ||G(E(y)) - x||^2,
    with y an image of the shape x, q(z|y) = N(z_mean, exp(z_log_var)) = E(y).

    One training step, on a batch of (images y, grids x):
      1. D step, exactly as `GAN3D`'s (the same code): z ~ N(0, I), the D loss
         on x and G(z), applied only if the gate is open; the gate is then set
         from D's accuracy on this batch.
      2. G and E step, against the updated D: a fresh z ~ N(0, I) for the GAN
         term; z' = z_mean + exp(z_log_var / 2) * epsilon, epsilon ~ N(0, I)
         (the reparameterization trick) for the reconstruction G(z'). G is
         updated with its GAN loss (plus the mode-seeking term if its weight is
         > 0) + a2 * reconstruction; E with a1 * KL + a2 * reconstruction (the
         GAN term does not depend on E, nor the KL term on G, so one backward
         pass of the sum gives both).

    Every loss is averaged over the global batch (`tf.nn.compute_average_loss`)
    and every noise (both z and epsilon) is drawn for the global batch from a
    stateless seed of (seed, step) and sliced per replica, so one and two
    replicas train the same model, and a resumed run the same as an
    uninterrupted one.

    The GAN half samples z from the prior N(0, I): the KL term pulls q(z|y)
    towards N(0, I), so G sees codes from the same distribution in both halves
    and is sampled from it after training. `prior` must be "standard_normal".

    Metrics: `GAN3D`'s, plus `kl_loss`, `reconstruction_loss` (the unweighted
    terms, per example) and `reconstruction_iou` (IoU of G(z') > 0.5 with x).

    Args:
        generator: A `Generator`.
        discriminator: A `Discriminator` of the same resolution.
        encoder: An `ImageEncoder` with the generator's latent_dim.
        prior: Must be "standard_normal".
        d_accuracy_threshold: The D gate's threshold, as for `GAN3D`.
        mode_seeking_weight: As for `GAN3D` (0 in the paper).
        feature_matching_weight: As for `GAN3D` (0 in the paper), against the
            batch's true grids.
        kl_weight: a1 (5 in the paper).
        reconstruction_weight: a2 (1e-4 in the paper).
        reconstruction_loss: "squared" (the paper's ||G(E(y)) - x||^2, on G's
            probabilities) or "cross_entropy" (binary cross-entropy on G's logits,
            `losses.reconstruction_cross_entropy`); both summed over voxels.
        reconstruction_positive_weight: With "cross_entropy", the weight of the
            occupied voxels (1 weighs them like the empty ones).
        kl_warmup_steps: a1 grows linearly from a1 / kl_warmup_steps at the first
            step to a1 at step kl_warmup_steps; 0 applies a1 from the start.
        seed: Seeds the noise.
        **kwargs: Passed to `keras.Model`.

    Raises:
        ValueError: for another prior, an encoder whose latent_dim differs from
            the generator's, mismatched resolutions, negative weights, an unknown
            reconstruction_loss, a positive weight <= 0, negative warm-up steps, or
            networks without synchronized BatchNorm under several replicas.
    """

    metric_names = VAE_METRIC_NAMES
    noise_streams = 3

    def __init__(self, generator, discriminator, encoder, prior=VAE_GAN_PRIOR, d_accuracy_threshold=0.8,
                 mode_seeking_weight=0.0, feature_matching_weight=0.0, kl_weight=5.0, reconstruction_weight=1e-4,
                 reconstruction_loss="squared", reconstruction_positive_weight=1.0, kl_warmup_steps=0,
                 seed=0, **kwargs):
        if prior != VAE_GAN_PRIOR:
            raise ValueError(
                f"VAEGAN3D needs prior={VAE_GAN_PRIOR!r}, received prior={prior!r}: its KL term pulls "
                "q(z|y) towards N(0, I), so the generator must be trained and sampled on N(0, I). "
                f"Pass prior={VAE_GAN_PRIOR!r} (--prior {VAE_GAN_PRIOR}).")
        if discriminator.rotation_head:
            raise ValueError("VAEGAN3D trains without the rotation task; build its discriminator "
                             "with rotation_head=False (--rotation_head false).")
        if encoder.latent_dim != generator.latent_dim:
            raise ValueError(
                f"The encoder outputs z of size {encoder.latent_dim} but the generator reads z of size "
                f"{generator.latent_dim}; build both with the same latent_dim.")
        for name, value in (("kl_weight", kl_weight), ("reconstruction_weight", reconstruction_weight)):
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0 (0 turns the term off), received {name}={value!r}.")
        if reconstruction_loss not in RECONSTRUCTION_LOSSES:
            raise ValueError(
                f"reconstruction_loss must be one of {', '.join(RECONSTRUCTION_LOSSES)}, received "
                f"reconstruction_loss={reconstruction_loss!r}.")
        if not reconstruction_positive_weight > 0:
            raise ValueError(
                "reconstruction_positive_weight must be > 0 (1 weighs occupied voxels like empty "
                f"ones), received {reconstruction_positive_weight!r}.")
        if not (isinstance(kl_warmup_steps, int) and kl_warmup_steps >= 0):
            raise ValueError(
                "kl_warmup_steps must be an integer >= 0 (0 applies the KL weight from the first "
                f"step), received {kl_warmup_steps!r}.")
        super().__init__(generator, discriminator, prior=prior, d_accuracy_threshold=d_accuracy_threshold,
                         mode_seeking_weight=mode_seeking_weight,
                         feature_matching_weight=feature_matching_weight, seed=seed, **kwargs)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if replicas > 1 and not encoder.synchronized_batchnorm:
            raise ValueError(
                f"This strategy has {replicas} replicas but the encoder was built with "
                "synchronized_batchnorm=False; build it with synchronized_batchnorm=True.")
        self.encoder = encoder
        self.kl_weight = float(kl_weight)
        self.reconstruction_weight = float(reconstruction_weight)
        self.reconstruction_loss = reconstruction_loss
        self.reconstruction_positive_weight = float(reconstruction_positive_weight)
        self.kl_warmup_steps = kl_warmup_steps
        self.encoder.build()

    @property
    def image_size(self) -> int:
        return self.encoder.image_size

    def compile(self, g_optimizer, d_optimizer, e_optimizer, **kwargs):
        """Sets the three optimizers (G, D, E) and builds their slots now (see `GAN3D.compile`)."""
        super().compile(g_optimizer=g_optimizer, d_optimizer=d_optimizer, **kwargs)
        self.e_optimizer = e_optimizer
        self.e_optimizer.build(self.encoder.trainable_variables)

    def encode(self, images, training=False):
        """q(z|y) of each image.

        Args:
            images: float [batch, image_size, image_size, 3] in [0, 1].
            training: BatchNorm mode.

        Returns:
            (z_mean, z_log_var), each float32 [batch, latent_dim].
        """
        return self.encoder(images, training=training)

    def reconstruct(self, images, training=False):
        """G(z_mean): the shape each image shows, as occupancy probabilities.

        Args:
            images: float [batch, image_size, image_size, 3] in [0, 1].
            training: BatchNorm mode of E and G.

        Returns:
            float32 [batch, R, R, R].
        """
        z_mean, _ = self.encoder(images, training=training)
        return self.generator(z_mean, training=training)

    def _sample_posterior(self, z_mean, z_log_var, step):
        """z ~ q(z|y) by the reparameterization trick: z_mean + exp(z_log_var / 2) * epsilon.

        epsilon ~ N(0, I) is drawn for the global batch from the stateless seed of
        (seed, step) and sliced per replica, like the GAN's z; gradients flow to
        z_mean and z_log_var, not through the draw.
        """
        epsilon = self._replica_noise(_EPSILON_STREAM, VAE_GAN_PRIOR, step)
        return z_mean + tf.exp(0.5 * z_log_var) * epsilon

    def _reconstruction_terms(self, z_posterior, voxels):
        """(G(z') as probabilities, the unweighted reconstruction loss per example)."""
        if self.reconstruction_loss == "cross_entropy":
            logits = self.generator.logits(z_posterior, training=True)
            return tf.sigmoid(logits), losses.reconstruction_cross_entropy(
                logits, voxels, self.reconstruction_positive_weight)
        reconstructions = self.generator(z_posterior, training=True)
        return reconstructions, losses.reconstruction_loss(reconstructions, voxels)

    def kl_weight_at(self, iterations):
        """a1 at the step after `iterations` completed ones (the KL warm-up), float32."""
        if not self.kl_warmup_steps:
            return tf.constant(self.kl_weight, tf.float32)
        ramp = tf.cast(iterations + 1, tf.float32) / float(self.kl_warmup_steps)
        return self.kl_weight * tf.minimum(ramp, 1.0)

    @staticmethod
    def _unpack(data):
        if not isinstance(data, (tuple, list)) or len(data) != 2:
            raise ValueError(
                "VAEGAN3D trains on (images, voxels) batches, as "
                "tf3dgan.data.image_pairs.pair_dataset makes them; received "
                f"{type(data).__name__} {data!r}.")
        images, voxels = data
        return tf.cast(images, tf.float32), tf.cast(voxels, tf.float32)

    def train_step(self, data):
        images, voxels = self._unpack(data)
        step = self._replica_step(voxels)
        discriminator = self._discriminator_step(voxels, step)

        # Generator and encoder step, against the updated discriminator (the
        # dependencies keep every collective of this step after D's update).
        with tf.control_dependencies([discriminator.updated]):
            z = self._replica_noise(1, self.prior, step)
            images = tf.identity(images)
        with tf.GradientTape() as tape:
            adversarial = self._adversarial_generator_loss(z, step, voxels)
            z_mean, z_log_var = self.encoder(images, training=True)
            z_posterior = self._sample_posterior(z_mean, z_log_var, step)
            reconstructions, per_example_reconstruction = self._reconstruction_terms(z_posterior, voxels)
            kl_loss = tf.nn.compute_average_loss(
                losses.kl_divergence(z_mean, z_log_var), global_batch_size=step.global_batch)
            reconstruction_loss = tf.nn.compute_average_loss(
                per_example_reconstruction, global_batch_size=step.global_batch)
            # d/dG: GAN + a2 * reconstruction; d/dE: a1 * KL + a2 * reconstruction.
            # (No loss scaling: the project's precisions, float32 and mixed_bfloat16, need none.)
            kl_weight = self.kl_weight_at(self.e_optimizer.iterations)
            total_loss = (adversarial.total_loss + kl_weight * kl_loss
                          + self.reconstruction_weight * reconstruction_loss)
        g_variables = self.generator.trainable_weights
        e_variables = self.encoder.trainable_weights
        gradients = tape.gradient(total_loss, g_variables + e_variables)
        self.g_optimizer.apply(gradients[:len(g_variables)], g_variables)
        with tf.control_dependencies([self.g_optimizer.iterations.value]):
            self.e_optimizer.apply(gradients[len(g_variables):], e_variables)

        sums = {
            "g_loss": adversarial.gan_loss,
            "kl_loss": kl_loss,
            "reconstruction_loss": reconstruction_loss,
            "iou_sum": tf.reduce_sum(losses.voxel_iou(tf.stop_gradient(reconstructions), voxels)),
            **self._diversity_sums(adversarial, z, step),
        }
        with tf.control_dependencies([self.e_optimizer.iterations.value]):
            sums = self._sum_over_replicas(step, sums)
        return self._finish_step(step, discriminator, {
            "g_loss": sums["g_loss"],
            "g_diversity": sums["g_diversity_sum"] / tf.maximum(sums["num_pairs"], 1.0),
            "kl_loss": sums["kl_loss"],
            "reconstruction_loss": sums["reconstruction_loss"],
            "reconstruction_iou": sums["iou_sum"] / tf.cast(step.global_batch, tf.float32),
            **self._feature_matching_log(adversarial),
        })

    def get_config(self):
        config = super().get_config()
        config.update({
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "kl_weight": self.kl_weight,
            "reconstruction_weight": self.reconstruction_weight,
            "reconstruction_loss": self.reconstruction_loss,
            "reconstruction_positive_weight": self.reconstruction_positive_weight,
            "kl_warmup_steps": self.kl_warmup_steps,
        })
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        return super().from_config(config)


def build_vae_gan(model_config, train_config) -> VAEGAN3D:
    """Builds and compiles a VAEGAN3D from configs (call inside a strategy scope).

    Args:
        model_config: A `ModelConfig` with model="vae_gan" (or any model whose prior
            is "standard_normal").
        train_config: A `TrainConfig`: learning rates, loss weights, the gate, seed.

    Returns:
        The compiled model, with Adam optimizers g_adam, d_adam and e_adam.

    Raises:
        ValueError: if the config's prior is not "standard_normal".
    """
    generator, discriminator = build_networks(model_config)
    encoder = ImageEncoder(
        latent_dim=model_config.latent_dim,
        image_size=model_config.image_size,
        base_filters=model_config.base_filters,
        name="encoder",
    )
    model = VAEGAN3D(generator, discriminator, encoder, prior=model_config.prior,
                     d_accuracy_threshold=train_config.d_accuracy_threshold,
                     mode_seeking_weight=train_config.mode_seeking_weight,
                     feature_matching_weight=train_config.feature_matching_weight,
                     kl_weight=train_config.kl_weight,
                     reconstruction_weight=train_config.reconstruction_weight,
                     reconstruction_loss=train_config.reconstruction_loss,
                     reconstruction_positive_weight=train_config.reconstruction_positive_weight,
                     kl_warmup_steps=train_config.kl_warmup_steps,
                     seed=train_config.seed, name="vae_gan3d")
    model.compile(
        g_optimizer=adam(train_config.generator_learning_rate, train_config, "g_adam"),
        d_optimizer=adam(train_config.discriminator_learning_rate, train_config, "d_adam"),
        e_optimizer=adam(train_config.encoder_learning_rate, train_config, "e_adam"),
    )
    return model
