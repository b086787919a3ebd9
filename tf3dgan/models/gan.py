"""GAN3D: the 3D-GAN training model (a generator and a discriminator)."""

from __future__ import annotations

from typing import NamedTuple

import keras
import tensorflow as tf

from tf3dgan import grid_rotation, losses, priors
from tf3dgan.config import ADVERSARIAL_LOSSES, parse_diff_augment
from tf3dgan.models import differentiable_augmentation, weight_average
from tf3dgan.models.discriminator import Discriminator
from tf3dgan.models.fused_adam import FusedAdam
from tf3dgan.models.generator import Generator

METRIC_NAMES = ("d_loss", "g_loss", "d_real_accuracy", "d_fake_accuracy", "d_update_rate",
                "g_diversity")
# Logged with a rotation head: how often D tells the quarter turn of a turned real / generated grid.
ROTATION_METRIC_NAMES = ("d_rotation_accuracy", "g_rotation_accuracy")


class ReplicaStep(NamedTuple):
    """Where one replica stands in a training step."""

    context: tf.distribute.ReplicaContext
    replica_id: tf.Tensor
    local_batch: tf.Tensor
    global_batch: tf.Tensor


class DiscriminatorStep(NamedTuple):
    """What the discriminator step leaves: global sums, and the gate it used."""

    gate_open: tf.Tensor
    loss: tf.Tensor
    real_correct: tf.Tensor
    fake_correct: tf.Tensor
    updated: tf.Tensor  # available once D's update is settled
    rotation_correct: tf.Tensor | None  # turned real grids whose turn D told, with a rotation head


class AdversarialLoss(NamedTuple):
    """G's adversarial loss on a batch of prior samples (this replica's share)."""

    gan_loss: tf.Tensor
    total_loss: tf.Tensor  # gan_loss plus the mode-seeking, rotation and feature-matching terms
    fakes: tf.Tensor
    feature_matching: tf.Tensor | None  # its global value, when the term is on
    rotation_correct: tf.Tensor | None  # this replica's turned G(z) whose turn D told, with a rotation head


@keras.saving.register_keras_serializable(package="tf3dgan")
class GAN3D(keras.Model):
    """Trains a `Generator` against a `Discriminator` with `fit()`.

    One training step, on a batch of real grids x:
      1. D step: z ~ p(z); loss -log D(x) - log(1 - D(G(z))). D's weights and
         optimizer change only if the gate is open (see below).
      2. The gate: D's accuracy on this batch (over the global batch, identical
         on every replica) decides whether D is updated on the *next* batch
         (open when accuracy <= `d_accuracy_threshold`, the paper's 80% rule).
         The gate is a variable, so it checkpoints and resumes.
      3. G step: a fresh z; non-saturating loss -log D(G(z)), plus, if
         `mode_seeking_weight` > 0, the mode-seeking term (`losses.mode_seeking_loss`),
         and if `feature_matching_weight` > 0, feature matching (see
         `_feature_matching_term`). Always applied.

    With a discriminator built with `rotation_head` (the self-supervised GAN of
    Chen et al., CVPR 2019), example i of the global batch is also turned by
    i mod 4 quarter turns about z, and D predicts the turn: D's loss adds
    `rotation_weight` times the cross-entropy of that prediction on the turned
    real grids (one more D pass in the D step), G's loss adds
    `generator_rotation_weight` times it on the turned G(z) (one more D pass in
    the G step, which also updates D's BatchNorm moving statistics once more).
    The logged d_loss then includes D's rotation term (g_loss stays G's
    adversarial loss alone); the task's own figures are logged as
    d_rotation_accuracy and g_rotation_accuracy.

    `g_diversity` (mean |G(z_a) - G(z_b)| / mean |z_a - z_b| over pairs of the
    batch) is logged on every step: it falls towards 0 when G collapses.

    Noise is drawn from stateless seeds derived from (`seed`, step counter) for
    the whole global batch, and each replica takes its slice: the noise of a
    step does not depend on the number of replicas (so one and two replicas
    train the same model) nor on whether the run was resumed.

    Subclasses (the 3D-VAE-GAN) reuse the pieces of a step: `_replica_step`,
    `_discriminator_step` (with the gate), `_adversarial_generator_loss`,
    `_sum_over_replicas` and `_finish_step`.

    Args:
        generator: A `Generator`.
        discriminator: A `Discriminator` of the same resolution.
        prior: "uniform" (Uniform(0, 1)), "normal" (Normal(0, 0.33)) or
            "standard_normal" (Normal(0, 1)); the generator is sampled from the
            same prior after training.
        d_accuracy_threshold: The gate's threshold; 1.0 turns the gate off.
        mode_seeking_weight: Weight of the mode-seeking term in G's loss; 0 (the
            paper) leaves it out. It pairs samples 0-1, 2-3, ... so each
            replica's batch must be even.
        feature_matching_weight: Weight of feature matching (Salimans et al.,
            2016) in G's loss: the squared distance between the global batch
            means of D's 4th-layer responses to G(z) and to the real grids, per
            feature. 0 (the paper) leaves it out; it adds a D pass over the real
            batch to the G step. Logged as g_feature_matching.
        adversarial_loss: "non_saturating" (the paper's losses above) or "wgan_gp"
            (Gulrajani et al., 2017): D is a critic with loss D(G(z)) - D(x) plus
            `gradient_penalty_weight` * (||grad D(x_mix)|| - 1)^2 at x_mix = e x +
            (1 - e) G(z), e ~ U(0, 1) per example (drawn from the stateless seed
            (seed, -1 - step)); G's loss is -D(G(z)). Needs a D without BatchNorm
            and the gate off. d_real/fake_accuracy then count the critic's signs.
        gradient_penalty_weight: WGAN-GP's lambda (10 in the paper).
        rotation_weight: beta, the weight of D's rotation loss (1 in Chen et al.);
            used with a rotation head only.
        generator_rotation_weight: alpha, the weight of G's rotation loss (0.2 in
            Chen et al.); used with a rotation head only.
        ema_decay: With a value in (0, 1), keeps `generator_ema`, an exponential
            moving average of G's weights (`weight_average`) updated after every
            G step; `sampling_generator` (samples, metrics, export) is then the
            average. 0 (the paper) keeps none.
        r1_weight: gamma of the R1 penalty (Mescheder et al. 2018), gamma / 2 *
            ||grad_x D(x)||^2 on the real grids D sees, added to D's loss; 0 (the
            paper) leaves it out. With BatchNorm in D the gradient of the batch's
            summed logits also carries the batch statistics' share.
        r1_interval: Lazy R1 (Karras et al. 2020): the penalty is computed only on
            steps that are multiples of this, weighted by it, so that its cost (a
            second backward pass through D) is paid once every r1_interval steps
            (on one device; a mirrored strategy computes it at every step and
            keeps it on those steps, see `_logits_and_r1_term`).
        diff_augment: Differentiable augmentations applied to every grid D sees in
            training, real and generated alike (`differentiable_augmentation`):
            a tuple or comma-separated string of "translate", "flip", "cutout";
            empty (the paper) for none. Never applied when sampling.
        seed: Seeds the noise.
        **kwargs: Passed to `keras.Model`.
    """

    # Logged metrics, in order.
    metric_names = METRIC_NAMES
    # Independent noise draws per step: z of the D step, z of the G step.
    noise_streams = 2

    def __init__(self, generator, discriminator, prior="uniform", d_accuracy_threshold=0.8,
                 mode_seeking_weight=0.0, feature_matching_weight=0.0,
                 adversarial_loss="non_saturating", gradient_penalty_weight=10.0, rotation_weight=1.0,
                 generator_rotation_weight=0.2, ema_decay=0.0, r1_weight=0.0, r1_interval=1, diff_augment=(),
                 seed=0, **kwargs):
        super().__init__(**kwargs)
        if generator.resolution != discriminator.resolution:
            raise ValueError(
                f"The generator makes {generator.resolution}^3 grids but the discriminator "
                f"reads {discriminator.resolution}^3 grids; build both with the same resolution."
            )
        priors.sample_latent(prior, [1, 1], [0, 0])  # validates the name early
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if replicas > 1 and not (generator.synchronized_batchnorm
                                 and discriminator.synchronized_batchnorm):
            # Per-replica statistics would train another model than one device
            # does, and leave the replicas' collectives without a fixed order.
            raise ValueError(
                f"This strategy has {replicas} replicas but a network was built with "
                "synchronized_batchnorm=False; build both with synchronized_batchnorm=True.")
        self.generator = generator
        self.discriminator = discriminator
        self.prior = prior
        self.d_accuracy_threshold = float(d_accuracy_threshold)
        self.mode_seeking_weight = float(mode_seeking_weight)
        self.feature_matching_weight = float(feature_matching_weight)
        if self.feature_matching_weight < 0:
            raise ValueError(f"feature_matching_weight must be >= 0 (0 turns the term off), "
                             f"received {feature_matching_weight!r}.")
        if self.feature_matching_weight > 0:  # logged only when it is trained
            self.metric_names = type(self).metric_names + ("g_feature_matching",)
        self.rotation_weight = float(rotation_weight)
        self.generator_rotation_weight = float(generator_rotation_weight)
        for name, value in (("rotation_weight", self.rotation_weight),
                            ("generator_rotation_weight", self.generator_rotation_weight)):
            if value < 0:
                raise ValueError(f"{name} must be >= 0 (0 turns the term off), received {value!r}.")
        if discriminator.rotation_head:
            self.metric_names = self.metric_names + ROTATION_METRIC_NAMES
        _check_adversarial_loss(adversarial_loss, gradient_penalty_weight, discriminator,
                                self.d_accuracy_threshold)
        self.adversarial_loss = adversarial_loss
        self.gradient_penalty_weight = float(gradient_penalty_weight)
        self.seed = int(seed)
        self.generator.build()
        self.discriminator.build()
        self.ema_decay = float(ema_decay)
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1) (0 keeps no average), received {ema_decay!r}; "
                             "0.999 is a common choice.")
        self.generator_ema = None
        if self.ema_decay > 0:
            self.generator_ema = type(generator).from_config(
                {**generator.get_config(), "name": f"{generator.name}_ema"})
            self.generator_ema.build()
            self.generator_ema.set_weights(generator.get_weights())
            self.generator_ema.trainable = False  # moved by the average, never by a gradient
        self.r1_weight = float(r1_weight)
        if self.r1_weight < 0:
            raise ValueError(f"r1_weight must be >= 0 (0 turns the penalty off), received {r1_weight!r}.")
        if isinstance(r1_interval, bool) or not isinstance(r1_interval, int) or r1_interval < 1:
            raise ValueError(f"r1_interval must be a positive integer (1 penalizes every step), received "
                             f"{r1_interval!r}.")
        self.r1_interval = r1_interval
        self.diff_augment = parse_diff_augment(
            diff_augment if isinstance(diff_augment, str) else ",".join(diff_augment))

        # "only_first_replica": every replica computes the same value (from
        # all-reduced counts), so the first replica's write is the true one.
        self.step_counter = self.add_weight(
            shape=(), dtype="int64", initializer="zeros", trainable=False,
            aggregation="only_first_replica", name="step_counter",
        )
        self.d_gate_open = self.add_weight(
            shape=(), dtype="bool", initializer="ones", trainable=False,
            aggregation="only_first_replica", name="d_gate_open",
        )
        self.trackers = {name: keras.metrics.Mean(name=name) for name in self.metric_names}
        # Set for MultiWorkerMirroredStrategy: Keras 3 reduces logs along axis 0
        # there, which fails on scalars (tensorflow/tensorflow#72388).
        self.rank1_logs = False
        self.built = True

    @property
    def metrics(self):
        return list(self.trackers.values())

    @property
    def resolution(self) -> int:
        return self.generator.resolution

    @property
    def sampling_generator(self):
        """The generator samples, metrics and exports use: the weight average when the
        model keeps one, else G itself (which stays available as `generator`)."""
        return self.generator_ema if self.generator_ema is not None else self.generator

    @property
    def latent_dim(self) -> int:
        return self.generator.latent_dim

    def compile(self, g_optimizer, d_optimizer, **kwargs):
        """Sets the two optimizers and builds their slots now.

        Building here, inside the strategy scope of the caller, matters: Adam's
        moments cannot be created lazily inside a distributed step.
        """
        super().compile(optimizer=None, **kwargs)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)

    def call(self, z, training=False):
        return self.generator(z, training=training)

    def sample_latent(self, num_samples: int, seed: int) -> tf.Tensor:
        """z for `num_samples` samples, from the training prior."""
        return priors.sample_latent(self.prior, [num_samples, self.latent_dim],
                                    tf.constant([seed, 0], tf.int64))

    def _replica_noise(self, stream: int, prior: str, step: ReplicaStep):
        """This replica's slice of the global batch of noise number `stream` of this step.

        Drawn from the stateless seed (seed, step_counter * noise_streams + stream)
        for the whole global batch, so it depends on neither the replica split
        nor a resume.
        """
        seed = tf.stack([tf.constant(self.seed, tf.int64),
                         self.step_counter * self.noise_streams + stream])
        noise = priors.sample_latent(prior, [step.global_batch, self.latent_dim], seed)
        start = step.replica_id * step.local_batch
        return noise[start:start + step.local_batch]

    def _replica_latents(self, stream: int, local_batch, global_batch, replica_id):
        step = ReplicaStep(None, replica_id, local_batch, global_batch)
        return self._replica_noise(stream, self.prior, step)

    @staticmethod
    def _replica_step(batch) -> ReplicaStep:
        context = tf.distribute.get_replica_context()
        local_batch = tf.shape(batch)[0]
        return ReplicaStep(context=context,
                           replica_id=tf.cast(context.replica_id_in_sync_group, tf.int32),
                           local_batch=local_batch,
                           global_batch=local_batch * context.num_replicas_in_sync)

    def _discriminator_step(self, real, step: ReplicaStep) -> DiscriminatorStep:
        """D's step on real grids and G(z) for z from the prior (noise stream 0), behind the gate.

        Collectives (gradient all-reduces, statistics) must be issued in the same
        order on every replica, or they pair up wrongly; the control dependencies
        here and in the callers fix that order: statistics, D update, G step, G
        update.
        """
        gate_open = tf.convert_to_tensor(self.d_gate_open)
        z = self._replica_noise(0, self.prior, step)
        fake = tf.stop_gradient(self.generator(z, training=True))
        seen_real = self._augment(real, 0, step)
        seen_fake = self._augment(fake, 1, step)
        with tf.GradientTape() as tape:
            r1_term = None
            if self.r1_weight > 0:
                real_logits, r1_term = self._logits_and_r1_term(seen_real, step)
            else:
                real_logits = self.discriminator(seen_real, training=True)
            fake_logits = self.discriminator(seen_fake, training=True)
            if self.adversarial_loss == "wgan_gp":
                per_example = (losses.wasserstein_critic_loss(real_logits, fake_logits)
                               + self.gradient_penalty_weight * self._gradient_penalty(real, fake, step))
            else:
                per_example = losses.discriminator_loss(real_logits, fake_logits)
            if r1_term is not None:
                per_example += r1_term
            rotation_correct = None
            if self.discriminator.rotation_head:
                rotation_loss, rotation_correct = self._rotation_task(real, step, after=fake_logits)
                per_example += self.rotation_weight * rotation_loss
            d_loss = tf.nn.compute_average_loss(per_example, global_batch_size=step.global_batch)
            scaled_d_loss = self.d_optimizer.scale_loss(d_loss)
        d_gradients = tape.gradient(scaled_d_loss, self.discriminator.trainable_weights)

        counts = {"real_correct": tf.reduce_sum(tf.cast(real_logits > 0, tf.float32)),
                  "fake_correct": tf.reduce_sum(tf.cast(fake_logits < 0, tf.float32))}
        if rotation_correct is not None:
            counts["rotation_correct"] = rotation_correct
        d_loss, counts = step.context.all_reduce(tf.distribute.ReduceOp.SUM, [d_loss, counts])
        with tf.control_dependencies([d_loss]):
            d_updated = self._apply_if(
                gate_open, self.d_optimizer, d_gradients, self.discriminator.trainable_weights)
        return DiscriminatorStep(gate_open, d_loss, counts["real_correct"], counts["fake_correct"],
                                 d_updated, counts.get("rotation_correct"))

    def _rotation_task(self, grids, step: ReplicaStep, after: tf.Tensor):
        """D's rotation prediction on `grids`, example i of the global batch turned by i mod 4
        quarter turns about z; for use inside a tape (gradients reach D and the grids).

        Args:
            grids: This replica's [local_batch, R, R, R] grids.
            step: This replica's step.
            after: D's previous output in this step. The turned pass waits for it, so
                synchronized BatchNorm's all-reduces keep one order on every replica.

        Returns:
            (per-example cross-entropy [local_batch], count of examples whose turn D told)
        """
        turns = (step.replica_id * step.local_batch + tf.range(step.local_batch)) % grid_rotation.QUARTER_TURNS
        with tf.control_dependencies([after]):
            turned = grid_rotation.turn_about_z(grids, turns)
        _, rotation_logits = self.discriminator.logits_and_rotation_logits(turned, training=True)
        told = tf.equal(tf.argmax(rotation_logits, axis=-1, output_type=tf.int32), turns)
        return losses.rotation_loss(rotation_logits, turns), tf.reduce_sum(tf.cast(told, tf.float32))

    def _augment(self, grids, stream: int, step: ReplicaStep):
        """`grids` as D sees them in training: with the model's differentiable augmentations,
        drawn from the stateless seed (seed + 1, step_counter * 4 + stream) for the global batch."""
        if not self.diff_augment:
            return grids
        seed = tf.stack([tf.constant(self.seed + 1, tf.int64), self.step_counter * 4 + stream])
        return differentiable_augmentation.augment(
            grids, self.diff_augment, seed, step.replica_id * step.local_batch, step.global_batch)

    def _logits_and_r1_term(self, real, step: ReplicaStep):
        """D's logits on `real` and R1's term of D's loss per example, inside D's tape:
        gamma / 2 * ||grad_x D(x)||^2, or with lazy R1 r1_interval times it on the steps
        it is computed and 0 on the others."""
        scale = 0.5 * self.r1_weight
        if self.r1_interval == 1:
            logits, penalty = self._logits_and_r1_penalty(real)
            return logits, scale * penalty

        penalize = tf.equal(self.step_counter % self.r1_interval, 0)

        def with_penalty():
            logits, penalty = self._logits_and_r1_penalty(real)
            return logits, scale * self.r1_interval * penalty

        if tf.distribute.has_strategy() and not isinstance(tf.distribute.get_strategy(),
                                                           tf.distribute.OneDeviceStrategy):
            # A mirrored strategy refuses BatchNorm's synchronized updates inside a
            # tf.cond (they are merge_calls): the penalty is computed at every step
            # and kept on its steps only. Same values, no saving (as `_apply_if`).
            logits, term = with_penalty()
            return logits, term * tf.cast(penalize, term.dtype)

        def without_penalty():
            return self.discriminator(real, training=True), tf.zeros([step.local_batch], tf.float32)

        return tf.cond(penalize, with_penalty, without_penalty)

    def _logits_and_r1_penalty(self, real):
        """D's logits on `real` and R1's ||grad_x D(x)||^2 per example, inside D's tape."""
        with tf.GradientTape() as penalty_tape:
            penalty_tape.watch(real)
            real_logits = self.discriminator(real, training=True)
            summed = tf.reduce_sum(tf.cast(real_logits, tf.float32))
        return real_logits, losses.r1_penalty(penalty_tape.gradient(summed, real))

    def _gradient_penalty(self, real, fake, step: ReplicaStep) -> tf.Tensor:
        """WGAN-GP's (||grad D(x_mix)|| - 1)^2 per example of this replica, inside D's tape."""
        # The mixing weights of the global batch, from a seed no z stream uses.
        seed = tf.stack([tf.constant(self.seed, tf.int64), -1 - self.step_counter])
        weights = tf.random.stateless_uniform([step.global_batch, 1, 1, 1], seed)
        start = step.replica_id * step.local_batch
        weights = weights[start:start + step.local_batch]
        mixed = weights * real + (1.0 - weights) * fake
        with tf.GradientTape() as penalty_tape:
            penalty_tape.watch(mixed)
            # Each logit depends on its own example only (no BatchNorm), so the
            # gradient of their sum holds every example's own gradient.
            mixed_logits = tf.reduce_sum(tf.cast(self.discriminator(mixed, training=True), tf.float32))
        return losses.gradient_penalty(penalty_tape.gradient(mixed_logits, mixed))

    def _adversarial_generator_loss(self, z, step: ReplicaStep, real=None) -> AdversarialLoss:
        """G's adversarial loss on G(z) (non-saturating, or WGAN's -D(G(z))), plus the
        mode-seeking and feature-matching terms (the latter needs the `real` batch);
        for use inside a tape."""
        fake = self.generator(z, training=True)
        fake_logits, fake_hidden = self.discriminator.logits_and_last_hidden(
            self._augment(fake, 2, step), training=True)
        per_example = (losses.wasserstein_generator_loss(fake_logits) if self.adversarial_loss == "wgan_gp"
                       else losses.generator_loss(fake_logits))
        g_loss = tf.nn.compute_average_loss(per_example, global_batch_size=step.global_batch)
        total_g_loss = g_loss
        if self.mode_seeking_weight > 0:
            total_g_loss += self.mode_seeking_weight * tf.nn.compute_average_loss(
                losses.mode_seeking_loss(fake, z), global_batch_size=step.global_batch // 2)
        last_output = fake_hidden  # D's passes in this step run one after the other
        rotation_correct = None
        if self.discriminator.rotation_head:
            rotation_loss, rotation_correct = self._rotation_task(fake, step, after=last_output)
            total_g_loss += self.generator_rotation_weight * tf.nn.compute_average_loss(
                rotation_loss, global_batch_size=step.global_batch)
            last_output = rotation_loss
        feature_matching = None
        if self.feature_matching_weight > 0:
            if real is None:
                raise ValueError("feature_matching_weight > 0 needs the real batch in the G step.")
            replica_term, feature_matching = self._feature_matching_term(
                fake_hidden, real, step, after=last_output)
            total_g_loss += self.feature_matching_weight * replica_term
        return AdversarialLoss(g_loss, total_g_loss, fake, feature_matching, rotation_correct)

    def _feature_matching_term(self, fake_hidden, real, step: ReplicaStep, after: tf.Tensor):
        """Feature matching: ||mean D4(G(z)) - mean D4(x)||^2 / num_features over the global batch.

        The means need every replica's batch, so the sums are all-reduced
        without gradient, and each replica's share of the loss is the term's
        first-order part in its own fakes: 2 <sum_r D4(G(z)) / N, d> / F with
        d = mean_fake - mean_real held constant. Summed over replicas (as the
        optimizer sums gradients) its gradient is exactly the term's, so one and
        two replicas train the same model.

        Args:
            fake_hidden: D's 4th-layer response to this replica's G(z).
            real: This replica's real grids.
            step: This replica's step.
            after: D's last output in this step, which the real pass waits for.

        Returns:
            (this replica's share, for the gradient; the term's global value, to log)
        """
        # After D's previous pass: keeps the real pass's BatchNorm all-reduces in
        # one order on every replica.
        with tf.control_dependencies([after]):
            real = tf.identity(real)
        _, real_hidden = self.discriminator.logits_and_last_hidden(real, training=True)
        fake_sum = tf.reduce_sum(tf.cast(fake_hidden, tf.float32), axis=0)
        real_sum = tf.stop_gradient(tf.reduce_sum(tf.cast(real_hidden, tf.float32), axis=0))
        global_fake, global_real = step.context.all_reduce(
            tf.distribute.ReduceOp.SUM, [tf.stop_gradient(fake_sum), real_sum])
        batch = tf.cast(step.global_batch, tf.float32)
        difference = (global_fake - global_real) / batch
        num_features = tf.cast(tf.size(difference), tf.float32)
        replica_share = 2.0 * tf.reduce_sum(fake_sum / batch * difference) / num_features
        return replica_share, tf.reduce_sum(tf.square(difference)) / num_features

    @staticmethod
    def _diversity_sums(adversarial: AdversarialLoss, z, step: ReplicaStep) -> dict:
        """This replica's sum of g_diversity over its pairs 0-1, 2-3, ..., and their count."""
        paired = 2 * (step.local_batch // 2)  # all of an even batch
        diversity_sum = tf.reduce_sum(
            losses.generator_diversity(tf.stop_gradient(adversarial.fakes[:paired]), z[:paired]))
        return {"g_diversity_sum": diversity_sum, "num_pairs": tf.cast(paired // 2, tf.float32)}

    @staticmethod
    def _sum_over_replicas(step: ReplicaStep, values: dict) -> dict:
        """Sums each value over the replicas (one all-reduce)."""
        names = list(values)
        summed = step.context.all_reduce(tf.distribute.ReduceOp.SUM, [values[n] for n in names])
        return dict(zip(names, summed))

    def _finish_step(self, step: ReplicaStep, discriminator: DiscriminatorStep, values: dict) -> dict:
        """Sets the gate for the next step, counts the step and updates the metrics.

        Args:
            step: This replica's step.
            discriminator: The D step's result.
            values: Global values of the metrics other than D's (g_loss, g_diversity, ...).

        Returns:
            The logs.
        """
        # Every replica now holds the same global statistics.
        global_batch_float = tf.cast(step.global_batch, tf.float32)
        d_accuracy = ((discriminator.real_correct + discriminator.fake_correct)
                      / (2.0 * global_batch_float))
        self.d_gate_open.assign(d_accuracy <= self.d_accuracy_threshold)
        self.step_counter.assign_add(1)

        values = {
            "d_loss": discriminator.loss,
            "d_real_accuracy": discriminator.real_correct / global_batch_float,
            "d_fake_accuracy": discriminator.fake_correct / global_batch_float,
            "d_update_rate": tf.cast(discriminator.gate_open, tf.float32),
            **values,
        }
        if discriminator.rotation_correct is not None:
            values["d_rotation_accuracy"] = discriminator.rotation_correct / global_batch_float
        for name in self.metric_names:
            self.trackers[name].update_state(values[name])
        if self.rank1_logs:
            return {name: tf.reshape(tracker.result(), [1]) for name, tracker in self.trackers.items()}
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def train_step(self, real):
        if isinstance(real, (tuple, list)):  # (x, y) datasets: labels are not used
            real = real[0]
        real = tf.cast(real, tf.float32)
        step = self._replica_step(real)
        discriminator = self._discriminator_step(real, step)

        # Generator step, against the updated discriminator.
        with tf.control_dependencies([discriminator.updated]):
            z = self._replica_noise(1, self.prior, step)
        with tf.GradientTape() as tape:
            adversarial = self._adversarial_generator_loss(z, step, real)
            scaled_g_loss = self.g_optimizer.scale_loss(adversarial.total_loss)
        g_gradients = tape.gradient(scaled_g_loss, self.generator.trainable_weights)
        self.g_optimizer.apply(g_gradients, self.generator.trainable_weights)
        g_updated = [self.g_optimizer.iterations.value]
        if self.generator_ema is not None:
            with tf.control_dependencies(g_updated):
                decay = weight_average.warmed_up_decay(self.ema_decay, self.step_counter)
                g_updated = tf.nest.flatten(weight_average.update_average(
                    self.generator_ema.weights, self.generator.weights, decay))
        sums = {"g_loss": adversarial.gan_loss, **self._diversity_sums(adversarial, z, step)}
        if adversarial.rotation_correct is not None:
            sums["g_rotation_correct"] = adversarial.rotation_correct
        with tf.control_dependencies(g_updated):
            sums = self._sum_over_replicas(step, sums)
        values = {
            "g_loss": sums["g_loss"],
            "g_diversity": sums["g_diversity_sum"] / tf.maximum(sums["num_pairs"], 1.0),
            **self._feature_matching_log(adversarial),
        }
        if "g_rotation_correct" in sums:
            values["g_rotation_accuracy"] = sums["g_rotation_correct"] / tf.cast(step.global_batch, tf.float32)
        return self._finish_step(step, discriminator, values)

    def _feature_matching_log(self, adversarial: AdversarialLoss) -> dict:
        """{"g_feature_matching": value} when the term is on, else {}."""
        if adversarial.feature_matching is None:
            return {}
        return {"g_feature_matching": adversarial.feature_matching}

    @staticmethod
    def _apply_if(condition, optimizer, gradients, variables):
        """Applies `gradients` only if `condition`; otherwise nothing changes.

        Without a strategy or under OneDeviceStrategy the update runs inside a
        `tf.cond`. Under a mirrored strategy it cannot (even with one device):
        the optimizer's gradient all-reduce inside a branch is either refused by
        tf.distribute or issues collectives in a different order on different
        replicas. There the update is always computed, and
        when `condition` is False the variables and the optimizer's state
        (moments, iteration count) are put back to their values from before it;
        that copy and select over every weight and moment costs memory
        bandwidth a single device has no reason to spend.

        Returns:
            A bool tensor: `condition`, available once the update is settled.
        """
        if (not tf.distribute.has_strategy()
                or isinstance(tf.distribute.get_strategy(), tf.distribute.OneDeviceStrategy)):
            def update():
                optimizer.apply(gradients, variables)
                with tf.control_dependencies([optimizer.iterations.value]):
                    return tf.constant(True)

            return tf.cond(condition, update, lambda: tf.constant(False))

        state = list(variables) + list(optimizer.variables)
        # The tf.Variables behind the Keras variables, which tf.distribute can update.
        tf_state = [getattr(variable, "value", variable) for variable in state]
        before = [tf.identity(variable) for variable in state]
        with tf.control_dependencies(before):
            optimizer.apply(gradients, variables)

        def keep_or_restore(strategy, before, condition):
            return [
                strategy.extended.update(
                    variable,
                    lambda var, old, keep: var.assign(tf.where(keep, var, old)),
                    args=(old, condition), group=True)
                for variable, old in zip(tf_state, before)
            ]

        with tf.control_dependencies([optimizer.iterations.value]):
            settled = tf.distribute.get_replica_context().merge_call(
                keep_or_restore, args=(before, condition))
        with tf.control_dependencies(tf.nest.flatten(settled)):
            return tf.identity(condition)

    def get_config(self):
        return {
            "generator": keras.saving.serialize_keras_object(self.generator),
            "discriminator": keras.saving.serialize_keras_object(self.discriminator),
            "prior": self.prior,
            "d_accuracy_threshold": self.d_accuracy_threshold,
            "mode_seeking_weight": self.mode_seeking_weight,
            "feature_matching_weight": self.feature_matching_weight,
            "adversarial_loss": self.adversarial_loss,
            "gradient_penalty_weight": self.gradient_penalty_weight,
            "rotation_weight": self.rotation_weight,
            "generator_rotation_weight": self.generator_rotation_weight,
            "ema_decay": self.ema_decay,
            "r1_weight": self.r1_weight,
            "r1_interval": self.r1_interval,
            "diff_augment": ",".join(self.diff_augment),
            "seed": self.seed,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["generator"] = keras.saving.deserialize_keras_object(config["generator"])
        config["discriminator"] = keras.saving.deserialize_keras_object(config["discriminator"])
        return cls(**config)


def _check_adversarial_loss(adversarial_loss, gradient_penalty_weight, discriminator,
                            d_accuracy_threshold) -> None:
    """Raises ValueError for a loss GAN3D does not know or cannot train with this D and gate."""
    if adversarial_loss not in ADVERSARIAL_LOSSES:
        raise ValueError(f"adversarial_loss={adversarial_loss!r} is not supported; expected one of "
                         f"{ADVERSARIAL_LOSSES}.")
    if not gradient_penalty_weight > 0:
        raise ValueError(f"gradient_penalty_weight must be positive, received {gradient_penalty_weight!r}.")
    if adversarial_loss != "wgan_gp":
        return
    if discriminator.normalization == "batchnorm":
        raise ValueError("adversarial_loss='wgan_gp' needs a discriminator without BatchNorm (its "
                         "penalty is per example); build it with normalization='none' or 'spectral'.")
    if d_accuracy_threshold < 1.0:
        raise ValueError("adversarial_loss='wgan_gp' trains a critic, which has no accuracy for the "
                         "gate; pass d_accuracy_threshold=1.0.")


def build_networks(model_config) -> tuple[Generator, Discriminator]:
    """The generator and discriminator a model config describes (every training model has them)."""
    generator = Generator(
        resolution=model_config.resolution,
        latent_dim=model_config.latent_dim,
        base_filters=model_config.base_filters,
        name="generator",
    )
    discriminator = Discriminator(
        resolution=model_config.resolution,
        base_filters=model_config.base_filters,
        normalization=model_config.discriminator_normalization,
        rotation_head=model_config.rotation_head,
        name="discriminator",
    )
    return generator, discriminator


def adam(learning_rate: float, train_config, name: str) -> FusedAdam:
    """Adam with the run's beta_1 (0.5 in the paper), as every network of the project
    trains; fused into one kernel per variable (see `fused_adam`)."""
    return FusedAdam(learning_rate, beta_1=train_config.beta_1, name=name)


def build_gan(model_config, train_config) -> GAN3D:
    """Builds and compiles a GAN3D from configs (call inside a strategy scope)."""
    generator, discriminator = build_networks(model_config)
    gan = GAN3D(generator, discriminator, prior=model_config.prior,
                d_accuracy_threshold=train_config.d_accuracy_threshold,
                mode_seeking_weight=train_config.mode_seeking_weight,
                feature_matching_weight=train_config.feature_matching_weight,
                adversarial_loss=train_config.adversarial_loss,
                gradient_penalty_weight=train_config.gradient_penalty_weight,
                rotation_weight=train_config.rotation_weight,
                generator_rotation_weight=train_config.generator_rotation_weight,
                ema_decay=train_config.ema_decay, r1_weight=train_config.r1_weight,
                r1_interval=train_config.r1_interval,
                diff_augment=train_config.diff_augment,
                seed=train_config.seed, name="gan3d")
    gan.compile(
        g_optimizer=adam(train_config.generator_learning_rate, train_config, "g_adam"),
        d_optimizer=adam(train_config.discriminator_learning_rate, train_config, "d_adam"),
    )
    return gan
