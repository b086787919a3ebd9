"""Generation metrics and sample meshes in TensorBoard: what a training run writes to its event files."""

import numpy as np
import pytest
import tensorflow as tf

from tf3dgan import config as config_lib
from tf3dgan import metrics, priors, training
from tf3dgan.data import synthetic
from tf3dgan.generation_callbacks import GenerationMetricsSummaries, SampleMeshes
from tf3dgan.mesh import to_format_frame, voxels_to_mesh
from tf3dgan.models.gan import build_gan


def _events(directory):
    """{tag: {step: tensor}} of every event file under `directory`."""
    values = {}
    for path in sorted(directory.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                values.setdefault(value.tag, {})[event.step] = (
                    tf.make_ndarray(value.tensor), value.metadata.plugin_data.plugin_name)
    return values


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run")
    config = config_lib.SMOKE.replace(metrics_every_steps=2, classes="chair,table")
    return workdir, config, training.train(config, workdir, verbose=0)


def test_a_run_with_metrics_every_steps_writes_the_generation_scalars(run):
    workdir, config, result = run
    events = _events(workdir / "logs")
    for name in ("cov_iou", "mmd_iou", "1nna_iou", "empty_samples"):
        assert sorted(events[f"generation/{name}"]) == [2, 4], name
    # The last values are those of the trained generator on the same z and reference subset.
    voxels, _ = synthetic.make_synthetic_dataset(4, resolution=16, seed=0, classes=("chair", "table"))
    callback = GenerationMetricsSummaries(result.gan, None, voxels, 2)
    expected = callback.compute()
    for name in ("cov_iou", "mmd_iou", "1nna_iou"):
        logged, plugin = events[f"generation/{name}"][4]
        assert plugin == "scalars"
        assert float(logged) == pytest.approx(expected[name], rel=1e-5)
    # ... which are the metrics of tf3dgan.metrics on those samples and the whole (8-shape) data.
    z = priors.sample_latent("uniform", [64, config.model.latent_dim], [4321, 1])
    samples = np.asarray(result.gan.generator(z, training=False))
    chosen = metrics.ReferenceSet(voxels > 0).compare(samples)
    assert expected == pytest.approx(chosen)


def test_each_epoch_writes_sample_meshes_for_the_mesh_plugin(run):
    workdir, _, _ = run
    events = _events(workdir / "logs")
    mesh_tags = {tag for tag, steps in events.items() if any(p == "mesh" for _, p in steps.values())}
    assert mesh_tags, f"no mesh summaries among {sorted(events)}"
    for tag in mesh_tags:
        assert sorted(events[tag]) == [2, 4]


def test_the_mesh_summary_holds_the_marching_cubes_mesh_of_the_sample(tmp_path):
    gan = build_gan(config_lib.SMOKE.model, config_lib.SMOKE.train)
    # A generator whose last bias makes every sample a known, full grid is hard to build;
    # instead compare with the mesh of the very sample the callback draws.
    writer = tf.summary.create_file_writer(str(tmp_path))
    callback = SampleMeshes(gan, writer, num_samples=2, seed=9, threshold=0.3)
    from tf3dgan.sampling import sample_voxels, standalone_generator

    voxels = sample_voxels(standalone_generator(gan.generator), gan.prior, 2, 9)
    written = callback.write(step=7)
    expected_written = [i for i in range(2) if (voxels[i] > 0.3).any()]
    assert written == expected_written
    events = _events(tmp_path)
    for index in written:
        mesh = to_format_frame(voxels_to_mesh(voxels[index], 0.3), "glb", 16)
        vertex_tags = [tag for tag in events if tag.startswith(f"sample_mesh/{index}") and "VERTEX" in tag]
        face_tags = [tag for tag in events if tag.startswith(f"sample_mesh/{index}") and "FACE" in tag]
        assert len(vertex_tags) == 1 and len(face_tags) == 1, sorted(events)
        vertices, plugin = events[vertex_tags[0]][7]
        faces, _ = events[face_tags[0]][7]
        assert plugin == "mesh"
        np.testing.assert_allclose(vertices[0], (mesh.vertices - 8) / 16, atol=1e-6)
        np.testing.assert_array_equal(faces[0], mesh.faces)


def test_the_metrics_callback_writes_at_multiples_of_every_steps_only(tmp_path):
    gan = build_gan(config_lib.SMOKE.model, config_lib.SMOKE.train)
    writer = tf.summary.create_file_writer(str(tmp_path))
    voxels, _ = synthetic.make_synthetic_dataset(3, resolution=16, seed=0, classes=("chair", "table"))
    callback = GenerationMetricsSummaries(gan, writer, voxels, every_steps=3, num_samples=6, num_reference=4)
    assert len(callback.reference) == 4
    callback._epoch_start_step = 0
    for batch in range(7):
        callback.on_train_batch_end(batch)
    assert sorted(_events(tmp_path)["generation/cov_iou"]) == [3, 6]
    assert callback.last["step"] == 6 and callback.last["num_samples"] == 6


def test_metrics_are_off_by_default_and_validated():
    assert config_lib.TrainConfig().metrics_every_steps == 0
    # Off in every preset but the chairs recipe, which chooses its checkpoint by them.
    assert all(preset.train.metrics_every_steps == 0 for name, preset in config_lib.PRESETS.items()
               if name != "cpu32_chairs")
    assert config_lib.PRESETS["cpu32_chairs"].train.metrics_every_steps == 250
    with pytest.raises(ValueError, match="metrics_every_steps must be >= 0.*received -1"):
        config_lib.TrainConfig(metrics_every_steps=-1)
    gan = build_gan(config_lib.SMOKE.model, config_lib.SMOKE.train)
    with pytest.raises(ValueError, match="at least 2 training shapes, received 1"):
        GenerationMetricsSummaries(gan, None, np.ones((1, 16, 16, 16)), 5)
