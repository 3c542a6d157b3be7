"""Attention insight: maps of query points, training snapshots, figures and the stage's files."""

import csv

import keras
import numpy as np
import pytest
from PIL import Image

from sagan.config import DEFAULT_QUERIES, Config, ModelConfig
from sagan.model.conditioning import conditioning_from_labels, model_inputs
from sagan.model.layers import SelfAttention
from sagan.model.networks import build_discriminator, build_generator
from sagan.sampling.attention_figures import curves_figure, save_figure
from sagan.sampling.attention_maps import (
    IMAGE_KEY,
    attention_maps,
    query_maps,
    query_position,
    read_snapshots,
    save_snapshot,
)
from sagan.sampling.attention_report import final_figures, training_figures
from sagan.sampling.faces import fixed_attributes

TINY = ModelConfig(latent_dim=8, g_width=8, d_width=8)


@pytest.fixture(scope="module")
def networks():
    keras.utils.set_random_seed(0)
    return build_generator(TINY, 32), build_discriminator(TINY, 32)


def _grow_gammas(model: keras.Model, value: float = 0.5) -> None:
    # γ starts at 0, which hides a wrong map behind an unchanged output; set it non-zero.
    for layer in model.layers:
        if isinstance(layer, SelfAttention):
            layer.gamma.assign(value)


def test_maps_are_the_layers_own_softmax_rows(networks):
    generator, _ = networks
    _grow_gammas(generator)
    z = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
    maps = attention_maps(generator, z)
    assert list(maps) == ["attention_16"]
    assert maps["attention_16"].shape == (3, 16 * 16, 16 * 16)
    np.testing.assert_allclose(maps["attention_16"].sum(-1), 1.0, rtol=1e-5)
    # The same map from a hand-run pass through the layers up to the attention block.
    x = z
    for layer in generator.layers[1:]:
        if isinstance(layer, SelfAttention):
            _, expected = layer(x, training=False, return_attention=True)
            break
        x = layer(x, training=False)
    np.testing.assert_allclose(maps["attention_16"], np.asarray(expected), rtol=1e-5)


def test_a_model_without_attention_has_no_maps_and_no_snapshot(tmp_path):
    config = ModelConfig(latent_dim=8, g_width=8, d_width=8, attention=False)
    generator, discriminator = build_generator(config, 32), build_discriminator(config, 32)
    assert attention_maps(generator, np.zeros((1, 8), np.float32)) == {}
    save_snapshot(generator, discriminator, np.zeros((1, 8), np.float32), tmp_path / "s.npz")
    assert not (tmp_path / "s.npz").exists()


@pytest.mark.parametrize(
    ("point", "side", "expected"),
    [
        ((0.0, 0.0), 16, 0),
        ((1.0, 1.0), 16, 255),
        ((0.46, 0.41), 16, 7 * 16 + 6),
        ((0.5, 0.25), 8, 34),
    ],
)
def test_query_points_address_the_cell_they_fall_in(point, side, expected):
    assert query_position(point, side) == expected


def test_query_maps_pick_each_points_row_and_lay_it_out_as_the_key_grid():
    maps = np.arange(2 * 16 * 4, dtype=np.float32).reshape(2, 16, 4)  # 4×4 queries, 2×2 keys
    picked = query_maps(maps, [(0.0, 0.0), (0.99, 0.3)])  # rows 0 and 3·4 + 1 = 13
    assert picked.shape == (2, 2, 2, 2)
    np.testing.assert_array_equal(picked[1, 1], maps[1, 13].reshape(2, 2))
    np.testing.assert_array_equal(picked[0, 0], maps[0, 0].reshape(2, 2))


def test_snapshots_round_trip_in_step_order(networks, tmp_path):
    generator, discriminator = networks
    z = np.ones((1, 8), np.float32)
    for step in (200, 100):
        save_snapshot(generator, discriminator, z, tmp_path / f"step_{step:06d}.npz")
    (tmp_path / "step_x.npz").write_bytes(b"not a snapshot name")
    snapshots = read_snapshots(tmp_path)
    assert [step for step, _ in snapshots] == [100, 200]
    arrays = snapshots[0][1]
    assert set(arrays) == {IMAGE_KEY, "g_attention_16", "d_attention_16"}
    assert arrays[IMAGE_KEY].shape == (32, 32, 3) and arrays[IMAGE_KEY].dtype == np.uint8
    expected = attention_maps(generator, z)["attention_16"][0]
    np.testing.assert_allclose(arrays["g_attention_16"], expected, atol=1e-3)
    assert read_snapshots(tmp_path / "absent") == []


def _history(path, with_gamma: bool):
    rows = [
        {"step": s, "d_loss": 1.0, "sigma_d_sn_down1": 1.0 + s / 100}
        | ({"gamma_g_attention_16": s / 1000} if with_gamma else {})
        for s in (10, 20, 30)
    ]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.mark.parametrize("with_gamma", [True, False])
def test_curves_show_gamma_against_the_reference_range_and_sigma(tmp_path, with_gamma):
    figure = curves_figure(_history(tmp_path / "history.csv", with_gamma))
    gamma_axis, sigma_axis = figure.axes
    assert "0.1–0.3" in " ".join(gamma_axis.get_legend_handles_labels()[1])
    assert ("g_attention_16" in gamma_axis.get_legend_handles_labels()[1]) == with_gamma
    assert sigma_axis.get_legend_handles_labels()[1] == ["d_sn_down1"]
    save_figure(figure, tmp_path / "curves.png")
    assert Image.open(tmp_path / "curves.png").size == (1100, 400)


def test_the_stage_figures_cover_every_layer_and_query(networks, tmp_path):
    generator, discriminator = networks
    config = Config()
    z = np.ones((1, 8), np.float32)
    for step in range(100, 1100, 100):
        save_snapshot(generator, discriminator, z, tmp_path / "snapshots" / f"step_{step:06d}.npz")
    out = tmp_path / "out"
    final_figures(config, generator, discriminator, out)
    training_figures(config, tmp_path / "snapshots", out)
    assert sorted(p.name for p in out.iterdir()) == [
        "discriminator_attention_16.png",
        "discriminator_attention_16_over_training.png",
        "generator_attention_16.png",
        "generator_attention_16_over_training.png",
    ]
    # num_images rows (4) and six snapshot rows, one column per query plus the bare face.
    final = Image.open(out / "generator_attention_16.png")
    over_training = Image.open(out / "generator_attention_16_over_training.png")
    assert final.width == over_training.width == round((1 + len(DEFAULT_QUERIES)) * 145)
    assert over_training.height > final.height


def test_conditional_networks_get_their_attributes_in_maps_and_snapshots(tmp_path):
    conditioning = conditioning_from_labels(None, ("glasses",), (2,), np.array([[0], [1]]))
    conditional = ModelConfig(latent_dim=8, g_width=8, d_width=8, conditional=True, pack=1)
    keras.utils.set_random_seed(0)
    generator = build_generator(conditional, 32, conditioning.dim)
    discriminator = build_discriminator(conditional, 32, conditioning.dim)
    _grow_gammas(generator)
    z = np.ones((1, 8), np.float32)
    attributes = fixed_attributes(conditioning, 0, 1)
    save_snapshot(generator, discriminator, z, tmp_path / "step_000001.npz", attributes)
    ((step, arrays),) = read_snapshots(tmp_path)
    assert {"g_attention_16", "d_attention_16", IMAGE_KEY} <= set(arrays)
    final_figures(Config(), generator, discriminator, tmp_path / "out", conditioning)
    assert (tmp_path / "out" / "generator_attention_16.png").is_file()
    # The maps depend on the attributes: the other class gives other G maps for the same z.
    maps = attention_maps(generator, model_inputs(z, attributes))["attention_16"]
    flipped = attention_maps(generator, model_inputs(z, 1.0 - attributes))["attention_16"]
    assert np.abs(maps - flipped).max() > 1e-6
