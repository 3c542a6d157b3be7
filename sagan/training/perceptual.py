"""VGG19 feature matching for the generator: the seed's "perceptual losses".

    P = Σ_l mean_{h,w,c} (E_batch φ_l(x_real) − E_batch φ_l(G(z)))²

with φ_l the output of VGG19 layer l (``train.perceptual_layers``), and G's loss
L_G + λ·P (λ = ``train.perceptual_weight``). This is Salimans et al.'s (2016) feature
matching on a frozen ImageNet network instead of D: G is pulled toward the real batch's
mean features, never toward one image. Each layer's squared distance is averaged over its
H·W·C features, so that a 512-channel layer does not outweigh a 64-channel one by its size.

Images reach VGG19 in its own input convention (Keras's "caffe" preprocessing): [-1, 1] →
[0, 255], RGB → BGR, the ImageNet channel means subtracted. They are not resized: the
convolutional layers are defined at any size, and 224×224 would cost 12× the FLOPs of
64×64 for features of the same local patterns (Johnson et al.'s perceptual losses also run
VGG at the training resolution).

The weights are Keras's ImageNet VGG19 (no top), downloaded once into ``~/.keras/models``,
or a local file named by ``train.perceptual_weights``. φ is never trained and never
checkpointed: it is rebuilt from that file, so a resumed run computes the same P.
"""

from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf

from sagan.config import ConfigError, TrainConfig

# What keras.applications.VGG19(weights="imagenet", include_top=False) fetches.
VGG19_WEIGHTS_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/vgg19/"
    "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
)
VGG19_WEIGHTS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
VGG19_WEIGHTS_MD5 = "253f8cb515780f3b799900260a226db6"
IMAGENET_BGR_MEANS = (103.939, 116.779, 123.68)


def vgg19_weights_file(config: TrainConfig) -> Path:
    """The VGG19 weights to use: ``train.perceptual_weights``, else Keras's ImageNet file.

    The ImageNet file is downloaded once into Keras's cache (``$KERAS_HOME/models``,
    ``~/.keras/models`` by default). Offline without it, a ConfigError says where Keras
    fetches it from and which key names a local copy.
    """
    if config.perceptual_weights is not None:
        path = Path(config.perceptual_weights)
        if not path.is_file():
            raise ConfigError(
                f"train.perceptual_weights names {path}, which does not exist: put VGG19 "
                f"weights there (e.g. {VGG19_WEIGHTS_URL}) or set the key to null to download "
                "Keras's ImageNet weights"
            )
        return path
    try:
        return Path(
            keras.utils.get_file(
                VGG19_WEIGHTS_FILE,
                VGG19_WEIGHTS_URL,
                cache_subdir="models",
                file_hash=VGG19_WEIGHTS_MD5,
            )
        )
    except Exception as error:  # Keras reports a failed download as a bare Exception
        raise ConfigError(
            f"train.perceptual_weight is {config.perceptual_weight} but VGG19's ImageNet "
            f"weights could not be downloaded from {VGG19_WEIGHTS_URL} ({error}); without "
            "internet, fetch that file elsewhere and name it in train.perceptual_weights"
        ) from None


def feature_network(layers: tuple[str, ...], image_size: int, weights_file: Path) -> keras.Model:
    """Frozen VGG19 from its input to ``layers``: (B, S, S, 3) VGG input → [φ_l (B, h, w, c)].

    The model stops at the deepest layer named, so deeper blocks cost nothing.
    """
    vgg = keras.applications.VGG19(
        include_top=False, weights=None, input_shape=(image_size, image_size, 3)
    )
    try:
        vgg.load_weights(weights_file)
    except Exception as error:  # h5py, zip and shape errors alike: the file does not fit
        raise ConfigError(
            f"train.perceptual_weights: {weights_file} does not hold VGG19 weights Keras can "
            f"load ({type(error).__name__}: {error})"
        ) from None
    features = keras.Model(
        vgg.input, [vgg.get_layer(name).output for name in layers], name="perceptual_features"
    )
    features.trainable = False
    return features


def vgg_input(images: tf.Tensor) -> tf.Tensor:
    """[-1, 1] RGB images → VGG19's input: [0, 255] BGR less the ImageNet channel means."""
    pixels = (tf.cast(images, tf.float32) + 1.0) * 127.5
    return pixels[..., ::-1] - tf.constant(IMAGENET_BGR_MEANS)


def perceptual_loss(real_means: list[tf.Tensor], fake_means: list[tf.Tensor]) -> tf.Tensor:
    """P = Σ_l mean((μ_l(real) − μ_l(fake))²), μ_l a layer's batch-mean features (h, w, c)."""
    return tf.add_n(
        [
            tf.reduce_mean(tf.square(real - fake))
            for real, fake in zip(real_means, fake_means, strict=True)
        ]
    )
