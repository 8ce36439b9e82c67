"""predict_score: the Dice it prints are those of the masks predict writes, on the slices the
data loader reads; its command line fails with one line on bad flags.

Small untrained models (test_predict's) on the real data when present, else on phantoms.
"""
import numpy as np
from PIL import Image
import pytest

from covseg_jax import predict, predict_score
from covseg_jax.data import medseg, splits
from covseg_jax.errors import InputError
from tests import helpers
from tests.test_predict import infection, lung  # noqa: F401 (fixtures)


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return medseg.find_data_dir(helpers.data_dir_or_phantoms(tmp_path_factory))


def dice(reference, predicted, label):
  true, found = reference == label, predicted == label
  total = true.sum() + found.sum()
  return np.nan if total == 0 else 2 * np.sum(true & found) / total


def test_whole_slices_are_the_aligned_png_export(data_dir):
  numbers = np.array([10, 90, 5])  # The export has slices 10 and 90 rotated.
  scan = predict_score.read_slices(data_dir, numbers, lung_masked=False)
  expected = medseg.load_medseg(data_dir, image_source='png').images[numbers - 1]
  np.testing.assert_array_equal(scan.slices, expected)
  scan = predict_score.read_slices(data_dir, numbers, lung_masked=True)
  expected = medseg.load_medseg(data_dir, image_source='lungmasked').images[numbers - 1]
  np.testing.assert_array_equal(scan.slices, expected)
  with pytest.raises(InputError, match=r'tr_im_z010.png: \(\d+, \d+\) pixels, the labels have '
                                       r'\(3, 3\)'):
    predict_score.read_slices(data_dir, numbers, lung_masked=False, shape=(3, 3))


def test_scores_are_those_of_the_masks_predict_writes(tmp_path, data_dir, infection, lung):
  results = predict_score.score(infection, lung, data_dir, 'val')
  numbers = splits.paper_split(data_dir).val + 1
  for k in numbers:
    predict.predict(data_dir / medseg.image_png_name(k), tmp_path, infection, lung, overlays=0)

  def written(kind):
    return np.stack([np.asarray(Image.open(tmp_path / f'tr_im_z{k:03d}_{kind}.png'))
                     for k in numbers])

  data = medseg.load_medseg(data_dir)
  labels, reference_lung = data.labels[numbers - 1], data.lung[numbers - 1]
  # score segments the slices as one batch, predict one at a time: on some CPUs (an Intel Xeon
  # with AVX-512) float32 rounds differently with the batch size, and the untrained models'
  # near-tied logits turn that into a few pixels of another class (Dice off by about 1e-5
  # relative there). A different pipeline would be off by far more than the 1e-3 allowed.
  assert results['lung']['lung'] == pytest.approx(dice(reference_lung, written('lung') > 0, 1),
                                                  rel=1e-3)
  lesions = written('infection')
  expected = [dice(labels, lesions, c) for c in (1, 2, 3)]
  np.testing.assert_allclose(list(results['lesions in the predicted lung'].values()), expected,
                             rtol=1e-3)
  assert list(results['lesions in the reference lung']) == list(infection.class_names[1:])


def test_a_perfect_lung_model_gives_the_reference_lung_results(data_dir, infection):

  class ReferenceLung:
    """Returns the reference lung of the slices score reads, in their order."""
    task, lung_mask = 'lung', False

    def segment(self, images, lung=None, progress=None):
      return medseg.load_medseg(data_dir).lung[splits.paper_split(data_dir).test]

  results = predict_score.score(infection, ReferenceLung(), data_dir, 'test')
  assert results['lung'] == {'lung': 1.0}
  np.testing.assert_equal(results['lesions in the predicted lung'],
                          results['lesions in the reference lung'])


def test_command_line(data_dir, infection, monkeypatch, capsys):
  monkeypatch.setattr(predict, 'load_model', lambda run, role, checkpoint=None: infection)
  assert predict_score.main(['--infection_run=runs/multi', '--lung_masked',
                             f'--data_dir={data_dir}', '--split=val']) == 0
  lines = capsys.readouterr().out.splitlines()
  assert lines[0] == 'infection run runs/multi: task multi, step 7, checkpoint None'
  assert lines[1].startswith("Pooled Dice on the val slices of the paper's split "
                             '(adnan_lungmasked_png')
  assert lines[2].startswith("  lesions in the input's lung  ground-glass opacity ")
  for flags in ([], ['--lung_masked', '--lung_run=runs/lung']):
    assert predict_score.main(['--infection_run=runs/multi', *flags]) == 2
    err = capsys.readouterr().err
    assert err == ('error: pass one of --lung_run (whole slices) and --lung_masked (lung-masked '
                   'slices)\n')
  with pytest.raises(SystemExit) as exit_info:
    predict_score.main(['--infection_run=runs/multi', '--lung_masked', '--split=all'])
  assert exit_info.value.code == 2
  assert capsys.readouterr().err.count('\n') == 1
  assert predict_score.main(['--infection_run=runs/multi', '--lung_masked',
                             f'--data_dir={data_dir}/missing']) == 2
  assert capsys.readouterr().err.startswith(f'error: {data_dir}/missing: no such directory')
