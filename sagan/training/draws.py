"""The random streams of one generator update, handed out by name.

Every draw is ``tf.random.stateless_*`` keyed by ``(train.seed, n)``, where n numbers the
draws of the whole run: update u (``step`` = u − 1 updates done) owns n = 64·step … 64·step + 63,
laid out as

    2c        the noise of critic step c          (c = 0 … n_critic − 1)
    2c + 1    the gradient penalty's mix weights of critic step c
    62 − c    the fake half's attribute rows of draw c (c = n_critic: G's own update)
    63        the noise of G's own update (``train.update: alternating``)

and image transforms take the negative numbers −1 − n, a stream apart from all of those:
DiffAugment of draw c's real half at n = 2c and fake half at 2c + 1, consistency
regularisation's T of draw c at 63 − c. The step counter, saved in every checkpoint, is
therefore the whole random state: a resumed run draws what an uninterrupted run would.

Each draw is made for the global batch and sliced to this replica's rows, so the numbers do
not depend on how many replicas share the batch.
"""

from __future__ import annotations

import tensorflow as tf

from sagan import randomness
from sagan.model.conditioning import Conditioning

DRAWS_PER_UPDATE = 64
_GENERATOR_NOISE = DRAWS_PER_UPDATE - 1
_FIRST_ATTRIBUTES = DRAWS_PER_UPDATE - 2
# Critic steps whose draws (2c, 2c + 1 and 62 − c) stay clear of each other.
MAX_CONDITIONAL_CRITICS = _FIRST_ATTRIBUTES // 3


class Draws:
    """The named random draws of the update after ``step`` updates, for one replica."""

    def __init__(self, seed: int, step: tf.Tensor, batch_size: int, replica_batch_size: int):
        self.seed = tf.constant(seed, tf.int64)
        self.first = step * DRAWS_PER_UPDATE
        self.batch_size = batch_size
        self.replica_batch_size = replica_batch_size

    def noise(self, critic: int, latent_dim: int) -> tf.Tensor:
        """z of critic step ``critic``."""
        return self._normal((self.batch_size, latent_dim), 2 * critic)

    def generator_noise(self, latent_dim: int) -> tf.Tensor:
        """z of G's own update, after the critic steps."""
        return self._normal((self.batch_size, latent_dim), _GENERATOR_NOISE)

    def mix(self, critic: int, pack: int) -> tf.Tensor:
        """The gradient penalty's weights α ~ U[0, 1], (B, 1, 1, 1), one per pack of images."""
        shape = (self.batch_size // pack, 1, 1, 1)
        alpha = randomness.uniform(shape, self._key(2 * critic + 1))
        return self.replica_rows(tf.repeat(alpha, pack, axis=0))

    def attributes(self, critic: int, conditioning: Conditioning | None) -> tf.Tensor | None:
        """One-hot attribute rows of draw ``critic``'s fake half, at the training split's
        frequencies; None for an unconditional model."""
        if conditioning is None:
            return None
        codes = conditioning.draw(self.batch_size, self._key(_FIRST_ATTRIBUTES - critic))
        return self.replica_rows(conditioning.encode(codes))

    def augment_key(self, critic: int, half: str) -> tf.Tensor:
        """The key of DiffAugment on draw ``critic``'s ``"real"`` or ``"fake"`` half."""
        return self._transform_key(2 * critic + (half == "fake"))

    def consistency_key(self, critic: int) -> tf.Tensor:
        """The key of consistency regularisation's T on draw ``critic``'s real half."""
        return self._transform_key(DRAWS_PER_UPDATE - 1 - critic)

    def rows(self) -> tuple[tf.Tensor, int]:
        """(first row, global batch): where this replica's images sit in the global batch."""
        return self._replica() * self.replica_batch_size, self.batch_size

    def replica_rows(self, values: tf.Tensor) -> tf.Tensor:
        """This replica's rows of a global-batch tensor."""
        start = self._replica() * self.replica_batch_size
        return values[start : start + self.replica_batch_size]

    def _normal(self, shape: tuple[int, int], purpose: int) -> tf.Tensor:
        return self.replica_rows(randomness.normal(shape, self._key(purpose)))

    def _key(self, purpose: int) -> tf.Tensor:
        return tf.stack([self.seed, self.first + purpose])

    def _transform_key(self, purpose: int) -> tf.Tensor:
        return tf.stack([self.seed, -1 - (self.first + purpose)])

    @staticmethod
    def _replica() -> tf.Tensor:
        return tf.distribute.get_replica_context().replica_id_in_sync_group
