import jax
import jax.numpy as jnp
import numpy as np
import pytest

from covseg_jax import losses


def test_median_frequency_weights_hand_computed():
  # Two 2x2 images. Image 0: three 0s, one 1. Image 1: two 0s, two 2s. Class 3 absent.
  labels = np.array([[[0, 0], [0, 1]], [[0, 0], [2, 2]]])
  # freq0 = 5 / 8 (both images contain 0); freq1 = 1 / 4; freq2 = 2 / 4.
  # median(0.625, 0.25, 0.5) = 0.5 -> w = 0.5/0.625, 0.5/0.25, 0.5/0.5; absent class -> 0.
  w = losses.median_frequency_weights(labels, 4)
  np.testing.assert_allclose(w, [0.8, 2.0, 1.0, 0.0], rtol=1e-6)


def _random_case(seed):
  """Random logits (2, 3, 3, 4), labels, four class weights and the logits' log-softmax."""
  rng = np.random.default_rng(seed)
  logits = rng.normal(size=(2, 3, 3, 4)).astype(np.float32)
  labels = rng.integers(0, 4, size=(2, 3, 3))
  weights = np.array([0.5, 1.0, 2.0, 4.0], np.float32)
  return logits, labels, weights, logits - np.log(np.exp(logits).sum(-1, keepdims=True))


def test_weighted_cross_entropy_matches_numpy():
  logits, labels, weights, log_probs = _random_case(0)
  expected = np.mean([-weights[l] * log_probs[i, y, x, l]
                      for (i, y, x), l in np.ndenumerate(labels)])
  got = losses.weighted_cross_entropy(jnp.asarray(logits), jnp.asarray(labels), weights)
  np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_soft_dice_loss_perfect_and_wrong():
  labels = jnp.array([[[0, 1], [1, 1]]])
  perfect = jax.nn.one_hot(labels, 2) * 100.0
  wrong = jax.nn.one_hot(1 - labels, 2) * 100.0
  assert losses.soft_dice_loss(perfect, labels) == pytest.approx(0.0, abs=1e-4)
  assert losses.soft_dice_loss(wrong, labels) == pytest.approx(1.0, abs=1e-4)


def test_unknown_loss_name():
  with pytest.raises(ValueError, match="unknown loss"):
    losses.compute_loss("focal", jnp.zeros((1, 2, 2, 2)), jnp.zeros((1, 2, 2), int), None)


def test_ce_dice_is_weighted_ce_dice_with_unit_weights():
  rng = np.random.default_rng(1)
  logits = jnp.asarray(rng.normal(size=(2, 3, 3, 3)).astype(np.float32))
  labels = jnp.asarray(rng.integers(0, 3, size=(2, 3, 3)))
  skewed = np.array([0.2, 3.0, 9.0], np.float32)
  got = losses.compute_loss("ce+dice", logits, labels, skewed)
  expected = losses.compute_loss("weighted_ce+dice", logits, labels, np.ones(3, np.float32))
  np.testing.assert_allclose(got, expected, rtol=1e-6)
  assert got != pytest.approx(losses.compute_loss("weighted_ce+dice", logits, labels, skewed))


def test_label_smoothing_mixes_in_the_uniform_target():
  logits, labels, weights, log_probs = _random_case(2)
  target = 0.9 * np.eye(4)[labels] + 0.1 / 4
  expected = np.mean(-weights[labels] * (target * log_probs).sum(-1))
  got = losses.weighted_cross_entropy(jnp.asarray(logits), jnp.asarray(labels), weights, 0.1)
  np.testing.assert_allclose(got, expected, rtol=1e-5)
  for name in ("weighted_ce", "weighted_ce+dice", "ce+dice"):
    plain = losses.compute_loss(name, jnp.asarray(logits), jnp.asarray(labels), weights)
    smoothed = losses.compute_loss(name, jnp.asarray(logits), jnp.asarray(labels), weights, 0.1)
    assert smoothed != pytest.approx(plain)
  # A confident right answer is no longer the optimum: the smoothed loss rises with confidence.
  confident = [losses.weighted_cross_entropy(jnp.array([[0.0, scale]]), jnp.array([1]),
                                             np.ones(2, np.float32), 0.1) for scale in (3, 10)]
  assert confident[1] > confident[0]
